output "database_url" {
  description = "DATABASE_URL of the gateway (TLS required)."
  value       = "postgresql://${azurerm_postgresql_flexible_server.this.administrator_login}:${random_password.postgres.result}@${azurerm_postgresql_flexible_server.this.fqdn}:5432/${azurerm_postgresql_flexible_server_database.llmp.name}?sslmode=require"
  sensitive   = true
}

output "redis_url" {
  description = "REDIS_URL of the gateway (rediss://, port 6380)."
  value       = "rediss://:${azurerm_redis_cache.this.primary_access_key}@${azurerm_redis_cache.this.hostname}:${azurerm_redis_cache.this.ssl_port}/0"
  sensitive   = true
}

output "postgres_fqdn" {
  description = "Private FQDN of the Postgres server."
  value       = azurerm_postgresql_flexible_server.this.fqdn
}

output "redis_hostname" {
  description = "Host name of the Redis cache."
  value       = azurerm_redis_cache.this.hostname
}
