-- Money moves with the rows that cause it, inside the statement that writes them: a hold is one
-- INSERT into reservations, a settlement one INSERT into usage_ledger (see the SQLite twin).

CREATE FUNCTION reservations_hold() RETURNS trigger AS $$
BEGIN
    UPDATE tenants SET reserved = reserved + NEW.amount WHERE id = NEW.tenant_id;
    UPDATE api_keys SET reserved = reserved + NEW.amount WHERE id = NEW.key_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reservations_hold AFTER INSERT ON reservations
FOR EACH ROW EXECUTE FUNCTION reservations_hold();

CREATE FUNCTION reservations_release() RETURNS trigger AS $$
BEGIN
    UPDATE tenants SET reserved = reserved - OLD.amount WHERE id = OLD.tenant_id;
    UPDATE api_keys SET reserved = reserved - OLD.amount WHERE id = OLD.key_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER reservations_release AFTER DELETE ON reservations
FOR EACH ROW EXECUTE FUNCTION reservations_release();

-- A ledger row charges its cost to tenant and key, counts its tokens in the tenant's month
-- (UTC, from created_ms) and releases the request's hold.
CREATE FUNCTION usage_ledger_charge() RETURNS trigger AS $$
DECLARE
    month TEXT := to_char(to_timestamp(NEW.created_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM');
BEGIN
    UPDATE tenants SET balance = balance - NEW.cost,
        period_tokens = CASE WHEN period = month
            THEN period_tokens + NEW.prompt_tokens + NEW.completion_tokens
            ELSE NEW.prompt_tokens + NEW.completion_tokens END,
        period = month
    WHERE id = NEW.tenant_id;
    IF NEW.cost <> 0 THEN
        UPDATE api_keys SET spent = spent + NEW.cost WHERE id = NEW.key_id;
    END IF;
    DELETE FROM reservations WHERE request_id = NEW.request_id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER usage_ledger_charge AFTER INSERT ON usage_ledger
FOR EACH ROW EXECUTE FUNCTION usage_ledger_charge();
