-- Approvals that ended by expiry have their own status (they read 'denied' before).
UPDATE approvals SET status = 'expired' WHERE decision = 'expired';
