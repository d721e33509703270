-- name: TenantCreate :one
INSERT INTO tenants (name)
VALUES (@name)
RETURNING *;

-- name: TenantGetByName :one
SELECT *
FROM tenants
WHERE name = @name;

-- name: TenantList :many
SELECT *
FROM tenants
ORDER BY name;
