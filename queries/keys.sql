-- name: KeyIDsInUse :many
-- KeyIDsInUse lists every key id some stored ciphertext was made with, so start-up can refuse
-- a key ring that cannot open them.
SELECT DISTINCT key_id::text
FROM (
    SELECT secret_key_id AS key_id FROM accounts WHERE secret_key_id IS NOT NULL
    UNION ALL
    SELECT value_key_id FROM credentials WHERE value_key_id IS NOT NULL
    UNION ALL
    SELECT previous_key_id FROM credentials WHERE previous_key_id IS NOT NULL
    UNION ALL
    SELECT config_key_id FROM component_callbacks
) ids
ORDER BY 1;

-- name: AccountSecretsNotUnderKey :many
-- AccountSecretsNotUnderKey pages through secrets made with another key than the current one.
SELECT id, appid, secret_ciphertext, secret_key_id
FROM accounts
WHERE secret_key_id <> @current_key_id::text
  AND id > @after_id
ORDER BY id
LIMIT @max;

-- name: AccountSecretReencrypt :execrows
-- AccountSecretReencrypt replaces a secret's ciphertext with one under the current key,
-- unless the secret changed since it was read.
UPDATE accounts
SET secret_ciphertext = @new_ciphertext, secret_key_id = @new_key_id::text
WHERE id = @id
  AND secret_key_id = @old_key_id::text
  AND secret_ciphertext = @old_ciphertext;

-- name: CredentialsNotUnderKey :many
-- CredentialsNotUnderKey pages through credential values (current or previous) made with
-- another key than the current one.
SELECT account_id, kind, value_ciphertext, value_key_id, previous_ciphertext, previous_key_id
FROM credentials
WHERE (value_key_id <> @current_key_id::text OR previous_key_id <> @current_key_id::text)
  AND (account_id, kind) > (@after_account_id::bigint, @after_kind::text)
ORDER BY account_id, kind
LIMIT @max;

-- name: CredentialReencrypt :execrows
-- CredentialReencrypt replaces the ciphertexts of a credential with ones under the current
-- key, unless a refresh wrote a new value since they were read. It changes no generation and
-- sends no notification: the values are the same.
UPDATE credentials
SET value_ciphertext = @new_value_ciphertext, value_key_id = @new_value_key_id,
    previous_ciphertext = @new_previous_ciphertext, previous_key_id = @new_previous_key_id
WHERE account_id = @account_id
  AND kind = @kind
  AND value_ciphertext IS NOT DISTINCT FROM @old_value_ciphertext
  AND previous_ciphertext IS NOT DISTINCT FROM @old_previous_ciphertext;

-- name: ComponentCallbacksNotUnderKey :many
-- ComponentCallbacksNotUnderKey pages through components' callback settings sealed with
-- another key than the current one.
SELECT account_id, config_ciphertext, config_key_id
FROM component_callbacks
WHERE config_key_id <> @current_key_id::text
  AND account_id > @after_id
ORDER BY account_id
LIMIT @max;

-- name: ComponentCallbackReencrypt :execrows
-- ComponentCallbackReencrypt replaces a component's sealed callback settings with the same
-- settings under the current key, unless they changed since they were read.
UPDATE component_callbacks
SET config_ciphertext = @new_ciphertext, config_key_id = @new_key_id::text
WHERE account_id = @account_id
  AND config_key_id = @old_key_id::text
  AND config_ciphertext = @old_ciphertext;
