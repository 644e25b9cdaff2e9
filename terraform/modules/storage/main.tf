# A Storage account with Entra-only access (no shared keys, no SAS, no local users), TLS 1.2, blob
# versioning and soft delete, private endpoints for the VNet, and a firewall that admits only the
# deployer ranges on the public endpoint (public access off when that list is empty).
# Containers are created through Azure Resource Manager (storage_account_id), not the data plane.

resource "azurerm_storage_account" "this" {
  #checkov:skip=CKV2_AZURE_1:Customer-managed keys not required; Microsoft-managed keys with infrastructure encryption.
  #checkov:skip=CKV_AZURE_33:Queue logging is a data-plane setting that needs shared keys or a firewall hole; diagnostics go to Log Analytics.
  #checkov:skip=CKV_AZURE_59:Public endpoint limited by network_rules to deployer_ip_ranges (pipeline agents publish models there); disabled when that list is empty.
  #checkov:skip=CKV2_AZURE_33:Private endpoints are created below for each subresource in private_endpoint_subresources.
  #checkov:skip=CKV_AZURE_206:Replication is per environment (var.replication_type): LRS in dev is a cost decision.
  name                              = var.name
  location                          = var.location
  resource_group_name               = var.resource_group_name
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.replication_type
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  shared_access_key_enabled         = false
  default_to_oauth_authentication   = true
  allow_nested_items_to_be_public   = false
  cross_tenant_replication_enabled  = false
  local_user_enabled                = false
  infrastructure_encryption_enabled = true
  public_network_access_enabled     = length(var.deployer_ip_ranges) > 0
  tags                              = var.tags

  network_rules {
    default_action = "Deny"
    bypass         = ["AzureServices"]
    ip_rules       = [for c in var.deployer_ip_ranges : trimsuffix(c, "/32")]
  }

  blob_properties {
    versioning_enabled  = var.versioning_enabled
    change_feed_enabled = var.versioning_enabled

    delete_retention_policy {
      days = 14
    }

    container_delete_retention_policy {
      days = 14
    }
  }

  sas_policy {
    expiration_period = "00.01:00:00"
  }
}

resource "azurerm_storage_container" "this" {
  #checkov:skip=CKV2_AZURE_21:Blob read logging is configured through diagnostic settings, not the classic storage analytics.
  for_each              = toset(var.containers)
  name                  = each.value
  storage_account_id    = azurerm_storage_account.this.id
  container_access_type = "private"
}

resource "azurerm_storage_queue" "this" {
  for_each           = toset(var.queues)
  name               = each.value
  storage_account_id = azurerm_storage_account.this.id
}

resource "azurerm_private_endpoint" "this" {
  for_each            = var.private_endpoint_subresources
  name                = "pe-${var.name}-${each.key}"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = each.key
    private_connection_resource_id = azurerm_storage_account.this.id
    subresource_names              = [each.key]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = each.key
    private_dns_zone_ids = [each.value]
  }
}

resource "azurerm_monitor_diagnostic_setting" "blob" {
  name                       = "diag-blob"
  target_resource_id         = "${azurerm_storage_account.this.id}/blobServices/default"
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category = "StorageRead"
  }

  enabled_log {
    category = "StorageWrite"
  }

  enabled_log {
    category = "StorageDelete"
  }
}
