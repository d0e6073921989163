-- local placeholder for another helper's 0010 (not committed)
SELECT 1;
