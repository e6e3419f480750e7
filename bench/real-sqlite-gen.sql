-- real-sqlite-gen.sql - generates the database the sqlite3 workload queries.
-- Run once per suite (not timed) under glibc: sqlite3 bench.db < real-sqlite-gen.sql
PRAGMA journal_mode = OFF;
PRAGMA synchronous = OFF;
CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT, note TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, amount INTEGER, item TEXT,
                    day INTEGER);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50000)
INSERT INTO customer
SELECT i, 'customer-' || i, 'city-' || (i * 7919 % 500),
       substr(hex(randomblob(0)) || printf('%.*c', i % 200, 'n'), 1, 200)
FROM c;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 400000)
INSERT INTO orders
SELECT i, (i * 104729) % 50000 + 1, (i * 7) % 1000, 'item-' || (i * 31 % 5000), i % 365
FROM c;
