\set a random(2, 10001)
\set b random(2, 10001)
\set hot random(1, 10)
\set amt random(1, 10000)
SELECT transfer(gen_random_uuid(), :a, CASE WHEN :hot = 1 OR :a = :b THEN 1 ELSE :b END, :amt);
