-- fraud_card_velocity: cards with more than 5 payment attempts within 5 minutes.
--
-- Columns: card_fingerprint, window_start, window_end, attempts.
-- Window: sliding, on attempted_at (event time): for every attempt, the attempts of the same
-- card in the 5 minutes up to it, both ends included ([window_end - 5 minutes, window_end]).
-- A row for every attempt at which that count exceeds 5, so a long burst shows as several
-- rows. Failed attempts count; soft-deleted payments are left out.
CREATE OR REPLACE VIEW {schema}.fraud_card_velocity AS
WITH counted AS (
    SELECT card_fingerprint,
           attempted_at,
           COUNT(*) OVER (
               PARTITION BY card_fingerprint
               ORDER BY attempted_at
               RANGE BETWEEN INTERVAL '5 minutes' PRECEDING AND CURRENT ROW
           ) AS attempts
    FROM {schema}.payments
    WHERE NOT _sluice_deleted
)
SELECT DISTINCT card_fingerprint,
       DATEADD(MINUTE, -5, attempted_at) AS window_start,
       attempted_at AS window_end,
       attempts
FROM counted
WHERE attempts > 5
