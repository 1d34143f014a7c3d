-- What a run's model calls cost, from the profiles' price tables (NULL when none has one).
ALTER TABLE runs ADD COLUMN cost_usd REAL;
