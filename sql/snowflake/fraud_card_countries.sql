-- fraud_card_countries: cards used from two different countries within 10 minutes.
--
-- Columns: card_fingerprint, first_country, first_at, second_country, second_at.
-- Window: pairs of payment attempts (succeeded or not) with the same card_fingerprint whose
-- attempted_at (event time) are at most 10 minutes apart, both ends included, and whose
-- countries differ; one row per pair, the earlier attempt first. Soft-deleted payments are
-- left out.
CREATE OR REPLACE VIEW {schema}.fraud_card_countries AS
SELECT a.card_fingerprint,
       a.country AS first_country,
       a.attempted_at AS first_at,
       b.country AS second_country,
       b.attempted_at AS second_at
FROM {schema}.payments AS a
JOIN {schema}.payments AS b
  ON b.card_fingerprint = a.card_fingerprint
 AND b.country <> a.country
 AND b.attempted_at >= a.attempted_at
 AND b.attempted_at <= DATEADD(MINUTE, 10, a.attempted_at)
 -- attempts at the same instant: keep one of the two orders of the pair
 AND (b.attempted_at > a.attempted_at OR b.country > a.country)
WHERE NOT a._sluice_deleted
  AND NOT b._sluice_deleted
