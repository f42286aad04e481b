-- Money moves with the rows that cause it, inside the statement that writes them: a hold is one
-- INSERT into reservations, a settlement one INSERT into usage_ledger. The hot path then needs
-- one round trip per step instead of a five-statement transaction, and no code path can write a
-- ledger row or a hold without moving the balance with it.

-- A hold raises what the tenant and the key have reserved; releasing it lowers both.
CREATE TRIGGER reservations_hold AFTER INSERT ON reservations
BEGIN
    UPDATE tenants SET reserved = reserved + NEW.amount WHERE id = NEW.tenant_id;
    UPDATE api_keys SET reserved = reserved + NEW.amount WHERE id = NEW.key_id;
END;
CREATE TRIGGER reservations_release AFTER DELETE ON reservations
BEGIN
    UPDATE tenants SET reserved = reserved - OLD.amount WHERE id = OLD.tenant_id;
    UPDATE api_keys SET reserved = reserved - OLD.amount WHERE id = OLD.key_id;
END;

-- A ledger row charges its cost to tenant and key, counts its tokens in the tenant's month
-- (UTC, from created_ms) and releases the request's hold.
CREATE TRIGGER usage_ledger_charge AFTER INSERT ON usage_ledger
BEGIN
    UPDATE tenants SET balance = balance - NEW.cost,
        period_tokens = CASE
            WHEN period = strftime('%Y-%m', NEW.created_ms / 1000, 'unixepoch')
            THEN period_tokens + NEW.prompt_tokens + NEW.completion_tokens
            ELSE NEW.prompt_tokens + NEW.completion_tokens END,
        period = strftime('%Y-%m', NEW.created_ms / 1000, 'unixepoch')
    WHERE id = NEW.tenant_id;
    UPDATE api_keys SET spent = spent + NEW.cost WHERE id = NEW.key_id AND NEW.cost <> 0;
    DELETE FROM reservations WHERE request_id = NEW.request_id;
END;
