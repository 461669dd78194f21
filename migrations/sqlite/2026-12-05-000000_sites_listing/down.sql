DROP INDEX sites_created;
