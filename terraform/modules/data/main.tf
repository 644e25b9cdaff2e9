# Postgres (Flexible Server, private access through a delegated subnet) and Azure Cache for Redis
# (TLS only, private endpoint). The gateway connects with DATABASE_URL and REDIS_URL, which are built
# here and stored in Key Vault by the platform module.

resource "random_password" "postgres" {
  length  = 40
  special = false # the password goes into a URL
}

resource "azurerm_postgresql_flexible_server" "this" {
  #checkov:skip=CKV2_AZURE_57:Private access by VNet injection (delegated subnet, public access off) instead of a private endpoint; both keep the server off the internet.
  #checkov:skip=CKV_AZURE_136:Geo-redundant backups are per environment (var.geo_redundant_backup): off in dev as a cost decision.
  name                          = "psql-${var.name}"
  location                      = var.location
  resource_group_name           = var.resource_group_name
  version                       = "16"
  sku_name                      = var.postgres_sku
  storage_mb                    = var.postgres_storage_mb
  auto_grow_enabled             = true
  backup_retention_days         = var.postgres_backup_retention_days
  geo_redundant_backup_enabled  = var.geo_redundant_backup
  delegated_subnet_id           = var.postgres_subnet_id
  private_dns_zone_id           = var.postgres_private_dns_zone_id
  public_network_access_enabled = false
  administrator_login           = "llmpadmin"
  administrator_password        = random_password.postgres.result
  zone                          = var.postgres_zone
  tags                          = var.tags

  authentication {
    active_directory_auth_enabled = true
    password_auth_enabled         = true
    tenant_id                     = var.tenant_id
  }

  dynamic "high_availability" {
    for_each = var.postgres_high_availability ? [1] : []
    content {
      mode = "ZoneRedundant"
    }
  }

  lifecycle {
    ignore_changes = [zone, high_availability[0].standby_availability_zone]
  }
}

resource "azurerm_postgresql_flexible_server_database" "llmp" {
  name      = "llmp"
  server_id = azurerm_postgresql_flexible_server.this.id
  charset   = "UTF8"
  collation = "en_US.utf8"
}

resource "azurerm_postgresql_flexible_server_configuration" "log_checkpoints" {
  name      = "log_checkpoints"
  server_id = azurerm_postgresql_flexible_server.this.id
  value     = "on"
}

resource "azurerm_postgresql_flexible_server_configuration" "connection_throttling" {
  name      = "connection_throttle.enable"
  server_id = azurerm_postgresql_flexible_server.this.id
  value     = "on"
}

resource "azurerm_redis_cache" "this" {
  #checkov:skip=CKV_AZURE_230:The tier is var.redis_sku: Standard (replicated) in prod, Basic in dev as a cost decision; Redis holds only caches and counters.
  name                          = "redis-${var.name}"
  location                      = var.location
  resource_group_name           = var.resource_group_name
  sku_name                      = var.redis_sku
  family                        = var.redis_sku == "Premium" ? "P" : "C"
  capacity                      = var.redis_capacity
  non_ssl_port_enabled          = false
  minimum_tls_version           = "1.2"
  public_network_access_enabled = false
  redis_version                 = "6"
  tags                          = var.tags

  redis_configuration {
    # The gateway authenticates with the access key (REDIS_URL); Entra auth is on for operators.
    active_directory_authentication_enabled = true
  }
}

resource "azurerm_private_endpoint" "redis" {
  name                = "pe-redis-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "redis"
    private_connection_resource_id = azurerm_redis_cache.this.id
    subresource_names              = ["redisCache"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "redis"
    private_dns_zone_ids = [var.redis_private_dns_zone_id]
  }
}
