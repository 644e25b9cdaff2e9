# Key Vault in RBAC mode with the secrets the apps read (DATABASE_URL, REDIS_URL, the Qdrant API key,
# the GGUF refresh token). Readers get "Key Vault Secrets User" per secret or per vault, outside this
# module. The deployer (the identity running Terraform) gets "Key Vault Secrets Officer".

data "azurerm_client_config" "current" {}

resource "azurerm_key_vault" "this" {
  #checkov:skip=CKV_AZURE_110:Purge protection is var.purge_protection_enabled: on in prod; off in dev so a torn-down environment can be rebuilt under the same name.
  #checkov:skip=CKV_AZURE_42:Soft delete is always on (30 days); the check reads recoverability from purge protection, see CKV_AZURE_110.
  #checkov:skip=CKV_AZURE_189:Public endpoint limited by network_acls to deployer_ip_ranges (Terraform writes the secrets from there); disabled when that list is empty.
  name                          = var.name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  enable_rbac_authorization     = true
  purge_protection_enabled      = var.purge_protection_enabled
  soft_delete_retention_days    = 30
  public_network_access_enabled = length(var.deployer_ip_ranges) > 0
  tags                          = var.tags

  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
    ip_rules       = var.deployer_ip_ranges
  }
}

resource "azurerm_private_endpoint" "this" {
  name                = "pe-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "vault"
    private_connection_resource_id = azurerm_key_vault.this.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "vault"
    private_dns_zone_ids = [var.private_dns_zone_id]
  }
}

resource "azurerm_role_assignment" "deployer" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

# Role assignments take a while to reach the Key Vault data plane.
resource "time_sleep" "rbac" {
  create_duration = "60s"
  depends_on      = [azurerm_role_assignment.deployer]
}

resource "azurerm_key_vault_secret" "this" {
  #checkov:skip=CKV_AZURE_41:Secrets are rotated by Terraform (re-apply); an expiry date would stop the platform when it passes unnoticed.
  for_each     = nonsensitive(toset(keys(var.secrets)))
  name         = each.value
  value        = var.secrets[each.value]
  key_vault_id = azurerm_key_vault.this.id
  content_type = "text/plain"
  depends_on   = [time_sleep.rbac, azurerm_private_endpoint.this]
}

resource "azurerm_monitor_diagnostic_setting" "this" {
  name                       = "diag-audit"
  target_resource_id         = azurerm_key_vault.this.id
  log_analytics_workspace_id = var.log_analytics_workspace_id

  enabled_log {
    category_group = "audit"
  }
}
