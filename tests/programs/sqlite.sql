-- sqlite.sql - build a database big enough to exercise the allocator, then
-- check it. The output is compared with the same run on glibc.
PRAGMA page_size = 4096;
PRAGMA cache_size = -20000;
CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INTEGER, c BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
INSERT INTO t SELECT i, printf('row-%08d-%s', i, hex(i * 7919)), (i * 2654435761) % 1000003,
       zeroblob(i % 300) FROM n;
CREATE INDEX t_b ON t(b);
CREATE INDEX t_a ON t(a);
UPDATE t SET a = a || '-updated' WHERE id % 3 = 0;
DELETE FROM t WHERE id % 7 = 0;
CREATE TABLE g AS SELECT b % 1000 AS k, count(*) AS n, sum(id) AS s, group_concat(id) AS ids
  FROM t GROUP BY b % 1000;
CREATE TABLE words(w TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO words SELECT substr('abcdefghijklmnopqrstuvwxyz', (i * 31) % 26 + 1, (i % 9) + 1) FROM n;
VACUUM;
PRAGMA integrity_check;
SELECT count(*), sum(b), total(length(a)), sum(length(c)) FROM t;
SELECT k, n, s, length(ids) FROM g ORDER BY n DESC, k LIMIT 20;
SELECT a FROM t ORDER BY a DESC LIMIT 5;
SELECT b, count(*) FROM t GROUP BY b HAVING count(*) > 1 ORDER BY b LIMIT 10;
SELECT w, count(*) FROM words GROUP BY w ORDER BY count(*) DESC, w LIMIT 10;
SELECT id, a FROM t ORDER BY substr(a, 5, 3) || b DESC LIMIT 5;
