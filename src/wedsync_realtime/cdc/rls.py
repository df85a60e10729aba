"""Row-level security for Postgres Changes, decided by PostgreSQL, one round trip per batch.

What Supabase does (``realtime.apply_rls``, from ``supabase/walrus``): for each change and each
subscription, ``set_config('role', <claims role>)`` and ``set_config('request.jwt.claims',
<claims>)``, then ``select exists(select 1 from <table> where <pk> = <value>)``: the *live* row is
read by primary key, so the answer reflects the row at check time, not the change; DELETE is not
checked at all (every filter-matching subscriber gets the key); UPDATE's ``old_record`` is sent
whole whatever its visibility. Column privileges come from ``has_column_privilege``.

What this module does instead, so that a subscriber never receives a row image it could not see:

- the row *images of the change* are checked, not the live row: the new row for INSERT and
  UPDATE, the old row for DELETE (and, for UPDATE on an RLS table, the old row too: its old
  values are sent only if that old row was visible; otherwise ``old_record`` is the key only);
- how: the table's own ``SELECT`` policies (``pg_policy``, deparsed by ``pg_get_expr`` with an
  empty ``search_path`` so every name is schema-qualified) are combined as PostgreSQL combines
  them (permissive ones OR-ed, restrictive ones AND-ed, none permissive = nothing visible; only
  policies whose roles the identity has the privileges of; superuser, ``BYPASSRLS`` and a
  non-forced owner bypass) and evaluated *by PostgreSQL*, under ``set_config('role')`` and
  ``set_config('request.jwt.claims')``, over the images rebuilt as the table's row type;
- column privileges: only columns the role may ``SELECT`` are returned; a role that cannot select
  every primary-key column sees nothing (Supabase sends "Error 401: Unauthorized" instead);
- one SQL statement per batch for all distinct identities and all tables of the batch (a
  temporary PL/pgSQL function, created once per connection in ``pg_temp``, loops inside the
  server, like ``apply_rls``): never one round trip per subscriber; `RlsChecker.round_trips`
  counts them;
- values come back as ``to_jsonb`` of the typed row, so numbers, booleans, arrays and JSON are
  encoded as Supabase's ``realtime.cast`` encodes them.

Refused identities (nothing visible): a role that does not exist, or a superuser role (a token
must not be able to claim one). An error while evaluating a policy for one identity (say, a
malformed claim cast in a policy) makes the rows invisible to that identity only, as in Supabase.

The database role of the connection must be a member of every role that tokens carry (Supabase's
``authenticator`` pattern), so that ``set_config('role', ...)`` is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg.types.json import Jsonb

from wedsync_realtime.cdc.messages import ColumnValue

__all__ = ["Identity", "RlsChecker", "TableCheck", "TableVerdict"]

Row = Mapping[str, ColumnValue]


@dataclass(frozen=True, slots=True)
class Identity:
    """Whom a check is for: the database role and the JWT claims that policies read.

    Equal identities (same role, same claims) are checked once per batch.
    """

    role: str
    claims_json: str

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], default_role: str = "anon") -> Identity:
        """From verified JWT claims; the role is ``claims["role"]`` (Supabase's ``claims_role``)."""
        role = claims.get("role")
        return cls(
            role if isinstance(role, str) and role else default_role,
            json.dumps(dict(claims), sort_keys=True, separators=(",", ":"), default=str),
        )

    @property
    def claims(self) -> dict[str, Any]:
        """The claims as a dict."""
        value: dict[str, Any] = json.loads(self.claims_json)
        return value


@dataclass(slots=True)
class TableCheck:
    """The row images of one table to check, and which identity needs which of them.

    ``rows`` are images (column → pgoutput text value; absent or non-text = unknown, read as
    NULL). ``drop`` lists, per row, columns to leave out of the returned JSON (oversized values).
    ``checks`` maps an index into the identities to the indexes of the rows it needs.
    """

    relation_oid: int
    rows: list[Row] = field(default_factory=list)
    drop: list[list[str]] = field(default_factory=list)
    checks: dict[int, list[int]] = field(default_factory=dict)

    def add_row(self, row: Row, drop: Sequence[str] = ()) -> int:
        """Add an image; its index."""
        self.rows.append(row)
        self.drop.append(list(drop))
        return len(self.rows) - 1

    def need(self, identity: int, row: int) -> None:
        """``identity`` needs to know whether it may see ``row``."""
        wanted = self.checks.setdefault(identity, [])
        if row not in wanted:
            wanted.append(row)


@dataclass(slots=True)
class TableVerdict:
    """The answer for one `TableCheck`.

    ``records[i]`` is row ``i`` as JSON values (all columns; None if it could not be read);
    ``visible[identity]`` the rows that identity may see; ``columns[identity]`` the columns its
    role may select, in table order; ``primary_key`` and ``rls_enabled`` from the catalog
    (``exists`` is False when the table is gone, and then nothing is visible).
    """

    exists: bool = False
    primary_key: tuple[str, ...] = ()
    rls_enabled: bool = False
    records: list[dict[str, Any] | None] = field(default_factory=list)
    visible: dict[int, frozenset[int]] = field(default_factory=dict)
    columns: dict[int, tuple[str, ...]] = field(default_factory=dict)


_FUNCTION: Final = r"""
CREATE OR REPLACE FUNCTION pg_temp.wedsync_rls_check(p_identities jsonb, p_groups jsonb)
RETURNS TABLE (grp integer, ident integer, visible integer[], cols text[], records jsonb,
               pkey text[], rls boolean)
LANGUAGE plpgsql VOLATILE
SET search_path = ''
AS $fn$
DECLARE
    g jsonb;
    c jsonb;
    entry jsonb;
    v_grp integer := -1;
    v_rel oid;
    v_type text;
    v_alias text;
    v_rls boolean;
    v_force boolean;
    v_owner oid;
    v_pkey text[];
    v_literals text[];
    v_records jsonb;
    v_ident integer;
    v_role text;
    v_role_oid oid;
    v_super boolean;
    v_bypass boolean;
    v_cols text[];
    v_permissive text;
    v_restrictive text;
    v_expr text;
    v_rows integer[];
    v_visible integer[];
    v_cache jsonb;
BEGIN
    FOR g IN SELECT x.value FROM jsonb_array_elements(p_groups) AS x LOOP
        v_grp := v_grp + 1;
        v_rel := (g ->> 'relid')::oid;
        SELECT cl.relrowsecurity, cl.relforcerowsecurity, cl.relowner,
               format('%I.%I', ns.nspname, cl.relname), quote_ident(cl.relname)
          INTO v_rls, v_force, v_owner, v_type, v_alias
          FROM pg_catalog.pg_class cl JOIN pg_catalog.pg_namespace ns ON ns.oid = cl.relnamespace
         WHERE cl.oid = v_rel;
        IF NOT FOUND THEN
            CONTINUE;  -- the table is gone: no row of it is visible to anyone
        END IF;
        v_pkey := ARRAY(
            SELECT a.attname::text
              FROM pg_catalog.pg_constraint k
              JOIN pg_catalog.pg_attribute a
                ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)
             WHERE k.conrelid = v_rel AND k.contype = 'p'
             ORDER BY a.attnum);
        -- Each image as a row-type literal, columns in the row type's order (record_in skips
        -- dropped columns); a column the image does not have is NULL.
        v_literals := ARRAY(
            SELECT '(' || coalesce((
                       SELECT string_agg(
                                  CASE WHEN r.value IS NULL THEN ''
                                       ELSE '"' || replace(replace(r.value, '\', '\\'), '"', '\"')
                                            || '"' END,
                                  ',' ORDER BY a.attnum)
                         FROM pg_catalog.pg_attribute a
                         LEFT JOIN jsonb_each_text(img.value) AS r ON r.key = a.attname::text
                        WHERE a.attrelid = v_rel AND a.attnum > 0 AND NOT a.attisdropped), '')
                   || ')'
              FROM jsonb_array_elements(g -> 'rows') WITH ORDINALITY AS img(value, n)
             ORDER BY img.n);
        BEGIN
            EXECUTE format(
                'SELECT jsonb_agg(to_jsonb(($1::%s[])[i])'
                ' - ARRAY(SELECT jsonb_array_elements_text($2 -> (i - 1))) ORDER BY i)'
                ' FROM generate_subscripts($1, 1) AS i', v_type)
              INTO v_records USING v_literals, g -> 'drop';
        EXCEPTION WHEN others THEN
            v_records := NULL;
            RAISE WARNING 'wedsync_rls_check: cannot read rows of %: %', v_type, SQLERRM;
        END;
        grp := v_grp; ident := -1; visible := NULL; cols := NULL; records := v_records;
        pkey := v_pkey; rls := v_rls;
        RETURN NEXT;
        records := NULL;

        v_cache := '{}'::jsonb;
        FOR c IN SELECT x.value FROM jsonb_array_elements(g -> 'checks') AS x LOOP
            v_ident := (c ->> 0)::integer;
            v_rows := ARRAY(SELECT jsonb_array_elements_text(c -> 1)::integer);
            v_role := p_identities -> v_ident ->> 'role';
            entry := v_cache -> v_role;
            IF entry IS NULL THEN
                SELECT ro.oid, ro.rolsuper, ro.rolbypassrls INTO v_role_oid, v_super, v_bypass
                  FROM pg_catalog.pg_roles ro WHERE ro.rolname = v_role;
                IF NOT FOUND OR v_super THEN
                    entry := jsonb_build_object('ok', false);
                ELSE
                    v_cols := ARRAY(
                        SELECT a.attname::text FROM pg_catalog.pg_attribute a
                         WHERE a.attrelid = v_rel AND a.attnum > 0 AND NOT a.attisdropped
                           AND pg_catalog.has_column_privilege(v_role_oid, v_rel, a.attnum,
                                                               'SELECT')
                         ORDER BY a.attnum);
                    IF NOT v_rls OR v_bypass
                       OR (pg_catalog.pg_has_role(v_role_oid, v_owner, 'USAGE')
                           AND NOT v_force) THEN
                        v_expr := 'true';
                    ELSE
                        SELECT string_agg('(' || pg_catalog.pg_get_expr(p.polqual, p.polrelid)
                                          || ')', ' OR ') FILTER (WHERE p.polpermissive),
                               string_agg('(' || pg_catalog.pg_get_expr(p.polqual, p.polrelid)
                                          || ')', ' AND ') FILTER (WHERE NOT p.polpermissive)
                          INTO v_permissive, v_restrictive
                          FROM pg_catalog.pg_policy p
                         WHERE p.polrelid = v_rel AND p.polcmd IN ('r', '*')
                           AND p.polqual IS NOT NULL
                           AND EXISTS (SELECT 1 FROM unnest(p.polroles) AS pr(oid)
                                        WHERE pr.oid = 0
                                           OR pg_catalog.pg_has_role(v_role_oid, pr.oid, 'USAGE'));
                        v_expr := CASE WHEN v_permissive IS NULL THEN 'false'
                                       ELSE '(' || v_permissive || ')'
                                            || coalesce(' AND ' || v_restrictive, '') END;
                    END IF;
                    entry := jsonb_build_object('ok', v_pkey <@ v_cols AND cardinality(v_pkey) > 0,
                                                'cols', to_jsonb(v_cols), 'expr', v_expr);
                END IF;
                v_cache := v_cache || jsonb_build_object(v_role, entry);
            END IF;
            v_visible := '{}';
            IF (entry ->> 'ok')::boolean THEN
                BEGIN
                    PERFORM pg_catalog.set_config('role', v_role, true),
                            pg_catalog.set_config('request.jwt.claims',
                                                  (p_identities -> v_ident ->> 'claims'), true);
                    EXECUTE format(
                        'SELECT coalesce(array_agg(wedsync_rls_s.wedsync_rls_i'
                        ' ORDER BY wedsync_rls_s.wedsync_rls_i), ''{}'')'
                        ' FROM unnest($2::integer[]) AS wedsync_rls_s(wedsync_rls_i)'
                        ' CROSS JOIN LATERAL'
                        ' (SELECT (($1::%s[])[wedsync_rls_s.wedsync_rls_i]).*) AS %s'
                        ' WHERE %s', v_type, v_alias, entry ->> 'expr')
                      INTO v_visible USING v_literals, v_rows;
                    PERFORM pg_catalog.set_config('role', 'none', true);
                EXCEPTION WHEN others THEN
                    -- The failed block's role and claims settings are rolled back with it.
                    v_visible := '{}';
                    RAISE WARNING 'wedsync_rls_check: role % on %: %', v_role, v_type, SQLERRM;
                END;
            END IF;
            grp := v_grp; ident := v_ident; visible := v_visible;
            cols := ARRAY(SELECT jsonb_array_elements_text(coalesce(entry -> 'cols', '[]')));
            pkey := NULL; rls := NULL;
            RETURN NEXT;
        END LOOP;
    END LOOP;
    PERFORM pg_catalog.set_config('request.jwt.claims', '', true);
END
$fn$
"""

_CALL: Final = (
    "SELECT grp, ident, visible, cols, records, pkey, rls FROM pg_temp.wedsync_rls_check(%s, %s)"
)


class RlsChecker:
    """Runs the batched check on its own connection (reconnecting once if it was lost)."""

    def __init__(self, dsn: str, *, application_name: str = "wedsync_realtime_rls") -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.round_trips = 0
        """Statements sent for checks: one per `check` call (two only after a reconnect)."""

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                await self._conn.close()
            conn = await psycopg.AsyncConnection.connect(
                self._dsn,
                autocommit=True,
                application_name=self._application_name,
                options="-c TimeZone=UTC",  # to_jsonb(timestamptz) as Supabase's UTC database
                connect_timeout=10,
            )
            await conn.execute(_FUNCTION)
            self._conn = conn
        return self._conn

    async def check(
        self, identities: Sequence[Identity], tables: Sequence[TableCheck]
    ) -> list[TableVerdict]:
        """One verdict per table, in order; one round trip for the whole batch."""
        if not tables:
            return []
        identities_json = Jsonb([{"role": i.role, "claims": i.claims_json} for i in identities])
        groups_json = Jsonb(
            [
                {
                    "relid": table.relation_oid,
                    "rows": [_image(row) for row in table.rows],
                    "drop": table.drop,
                    # PostgreSQL arrays count from 1.
                    "checks": [
                        [ident, [row + 1 for row in rows]] for ident, rows in table.checks.items()
                    ],
                }
                for table in tables
            ]
        )
        try:
            rows = await self._run(identities_json, groups_json)
        except psycopg.OperationalError:
            if self._conn is not None and not self._conn.broken:
                raise
            rows = await self._run(identities_json, groups_json)  # one retry on a new connection
        verdicts = [TableVerdict() for _ in tables]
        for grp, ident, visible, cols, records, pkey, rls in rows:
            verdict = verdicts[grp]
            if ident < 0:
                verdict.exists = True
                verdict.primary_key = tuple(pkey or ())
                verdict.rls_enabled = bool(rls)
                verdict.records = list(records) if records is not None else []
                if len(verdict.records) != len(tables[grp].rows):
                    verdict.records = [None] * len(tables[grp].rows)
            else:
                verdict.visible[ident] = frozenset(i - 1 for i in visible or ())
                verdict.columns[ident] = tuple(cols or ())
        return verdicts

    async def _run(self, identities: Jsonb, groups: Jsonb) -> list[tuple[Any, ...]]:
        conn = await self._connection()
        self.round_trips += 1
        cursor = await conn.execute(_CALL, (identities, groups))
        return await cursor.fetchall()

    async def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


def _image(row: Row) -> dict[str, str | None]:
    """The image as JSON: text values and NULLs; unknown values (unchanged TOAST) left out."""
    return {name: value for name, value in row.items() if value is None or isinstance(value, str)}
