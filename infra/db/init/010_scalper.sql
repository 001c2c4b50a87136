-- Runs once, when the timescaledb container initialises an empty data volume, in POSTGRES_DB as
-- POSTGRES_USER. Tables come from the Alembic migrations the services run; with the extension
-- present they turn bars and features into hypertables (on plain PostgreSQL they stay tables).
CREATE EXTENSION IF NOT EXISTS timescaledb;

-- Sessions, bars and fills are stored and compared in UTC.
ALTER DATABASE :"DBNAME" SET timezone TO 'UTC';
