DROP TABLE outbox;
DROP TABLE jobs;
DROP TABLE sites;
