-- Databases next to the Dagster instance database, created on the first start of the compose Postgres:
-- the activity stream's state and one warehouse per environment (WAREHOUSE_POSTGRES_DSN uses {env}).
CREATE DATABASE activity;
CREATE DATABASE warehouse_dev;
CREATE DATABASE warehouse_qa;
CREATE DATABASE warehouse_prod;
