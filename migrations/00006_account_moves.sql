-- +goose Up

-- An account can move to another tenant (PATCH /v1/accounts/{appid} with tenant): the rows
-- that carry its tenant_id follow it, and so do the authorizers of a component.
ALTER TABLE credentials
    DROP CONSTRAINT credentials_tenant_id_account_id_fkey,
    ADD CONSTRAINT credentials_tenant_id_account_id_fkey FOREIGN KEY (tenant_id, account_id)
        REFERENCES accounts (tenant_id, id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE upstream_calls
    DROP CONSTRAINT upstream_calls_tenant_id_account_id_fkey,
    ADD CONSTRAINT upstream_calls_tenant_id_account_id_fkey FOREIGN KEY (tenant_id, account_id)
        REFERENCES accounts (tenant_id, id) ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE accounts
    DROP CONSTRAINT accounts_tenant_id_component_account_id_fkey,
    ADD CONSTRAINT accounts_tenant_id_component_account_id_fkey FOREIGN KEY (tenant_id, component_account_id)
        REFERENCES accounts (tenant_id, id) ON UPDATE CASCADE;

-- +goose Down
ALTER TABLE accounts
    DROP CONSTRAINT accounts_tenant_id_component_account_id_fkey,
    ADD CONSTRAINT accounts_tenant_id_component_account_id_fkey FOREIGN KEY (tenant_id, component_account_id)
        REFERENCES accounts (tenant_id, id);
ALTER TABLE upstream_calls
    DROP CONSTRAINT upstream_calls_tenant_id_account_id_fkey,
    ADD CONSTRAINT upstream_calls_tenant_id_account_id_fkey FOREIGN KEY (tenant_id, account_id)
        REFERENCES accounts (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE credentials
    DROP CONSTRAINT credentials_tenant_id_account_id_fkey,
    ADD CONSTRAINT credentials_tenant_id_account_id_fkey FOREIGN KEY (tenant_id, account_id)
        REFERENCES accounts (tenant_id, id) ON DELETE CASCADE;
