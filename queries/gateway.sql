-- name: GatewayTokenRecord :exec
-- GatewayTokenRecord remembers a token a gateway handed out; the same token recorded by
-- another node is left as it is.
INSERT INTO gateway_tokens (token_sha256, tenant_id, account_id, valid_until)
VALUES (@token_sha256, @tenant_id, @account_id, @valid_until)
ON CONFLICT (token_sha256) DO NOTHING;

-- name: GatewayTokenGet :one
-- GatewayTokenGet finds the account of a token a gateway handed out.
SELECT a.id, a.tenant_id, a.appid, a.kind, coalesce(a.corp_id, '')::text AS corp_id, gt.valid_until
FROM gateway_tokens gt
JOIN accounts a ON a.id = gt.account_id
WHERE gt.token_sha256 = @token_sha256;

-- name: GatewayTokensPrune :execrows
-- GatewayTokensPrune forgets the tokens that have expired.
DELETE FROM gateway_tokens
WHERE valid_until < now();
