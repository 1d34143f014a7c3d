-- USD spent by a run's descendants, rolled up when each ends (for tree cost budgets).
ALTER TABLE runs ADD COLUMN child_cost_usd DOUBLE PRECISION;
