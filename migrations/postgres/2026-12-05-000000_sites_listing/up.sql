-- The admin listing pages through all sites newest first: (created_at, id) is its order and
-- its cursor.
CREATE INDEX sites_created ON sites (created_at, id);
