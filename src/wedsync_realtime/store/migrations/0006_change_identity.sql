-- A change's identity, kept by PostgreSQL whoever writes: the server derives event and
-- notification ids from a core field's version and a form response's `updated_at` (so the same
-- change seen twice is delivered and notified once). A platform UPDATE that changes a value
-- without bumping the version, or touches a response without a new `updated_at`, would otherwise
-- repeat the previous change's ids, and subscribers would never see the second change.

CREATE FUNCTION public.wedsync_core_field_versions() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF NEW.value IS DISTINCT FROM OLD.value AND NEW.version <= OLD.version THEN
            NEW.version := OLD.version + 1;
        END IF;
        IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
            NEW.updated_at := now();
        END IF;
        RETURN NEW;
    END
    $$;

CREATE TRIGGER core_field_values_version
    BEFORE UPDATE ON public.core_field_values
    FOR EACH ROW EXECUTE FUNCTION public.wedsync_core_field_versions();

CREATE FUNCTION public.wedsync_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
    BEGIN
        IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
            NEW.updated_at := now();
        END IF;
        RETURN NEW;
    END
    $$;

CREATE TRIGGER form_responses_updated_at
    BEFORE UPDATE ON public.form_responses
    FOR EACH ROW EXECUTE FUNCTION public.wedsync_touch_updated_at();
