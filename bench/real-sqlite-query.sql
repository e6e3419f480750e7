-- real-sqlite-query.sql - the timed sqlite3 workload: sorts, groupings, joins,
-- a temporary index and an in-memory table, on the generated database, with
-- a 64 MiB page cache (sqlite3's page cache and sorter allocate with malloc).
-- The output is the same for every allocator; the driver compares it.
PRAGMA cache_size = -65536;
PRAGMA temp_store = MEMORY;
SELECT count(*), sum(amount) FROM orders;
SELECT city, count(*), sum(o.amount) FROM customer c JOIN orders o ON o.customer = c.id
GROUP BY city ORDER BY 3 DESC, 1 LIMIT 5;
SELECT item, count(*) AS n FROM orders GROUP BY item ORDER BY n DESC, item LIMIT 5;
SELECT name FROM customer ORDER BY note DESC, name LIMIT 3;
SELECT sum(length(group_concat_text)) FROM (
  SELECT group_concat(item, ',') AS group_concat_text FROM orders GROUP BY day);
CREATE TEMP TABLE t AS SELECT customer, item, amount * 3 AS a3 FROM orders WHERE amount > 300;
CREATE INDEX temp.ti ON t(item, customer);
SELECT count(DISTINCT item), sum(a3) FROM t;
SELECT t.item, count(*) FROM t JOIN customer c ON c.id = t.customer
WHERE c.city = 'city-42' GROUP BY t.item ORDER BY 2 DESC, 1 LIMIT 3;
SELECT count(*) FROM (SELECT DISTINCT customer, day FROM orders);
DROP TABLE t;
