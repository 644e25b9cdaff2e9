# Azure Container Registry for the GGUF server image: Premium (private endpoint, network rules,
# retention), no admin user; AKS pulls with its kubelet identity (AcrPull).

resource "azurerm_container_registry" "this" {
  #checkov:skip=CKV_AZURE_233:Zone redundancy is var.zone_redundant: on where the environment has zones (prod), off in dev.
  #checkov:skip=CKV_AZURE_164:Image signing (content trust) is not used; images are built and pushed only by the app pipeline.
  #checkov:skip=CKV_AZURE_165:Geo-replication is a cost decision; one region serves the platform.
  #checkov:skip=CKV_AZURE_166:Quarantine needs an external scanner to release images; Defender for Containers scans on push instead.
  #checkov:skip=CKV_AZURE_139:Public endpoint limited by network_rule_set to deployer_ip_ranges (the pipeline agents push there); disabled when that list is empty.
  name                          = var.name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  sku                           = "Premium"
  admin_enabled                 = false
  anonymous_pull_enabled        = false
  data_endpoint_enabled         = true
  export_policy_enabled         = length(var.deployer_ip_ranges) > 0
  public_network_access_enabled = length(var.deployer_ip_ranges) > 0
  network_rule_bypass_option    = "AzureServices"
  retention_policy_in_days      = 30
  zone_redundancy_enabled       = var.zone_redundant
  tags                          = var.tags

  network_rule_set {
    default_action = "Deny"

    dynamic "ip_rule" {
      for_each = var.deployer_ip_ranges
      content {
        action   = "Allow"
        ip_range = ip_rule.value
      }
    }
  }
}

resource "azurerm_private_endpoint" "this" {
  name                = "pe-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.private_endpoint_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "acr"
    private_connection_resource_id = azurerm_container_registry.this.id
    subresource_names              = ["registry"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "acr"
    private_dns_zone_ids = [var.private_dns_zone_id]
  }
}

resource "azurerm_role_assignment" "pull" {
  for_each             = var.pull_principal_ids
  scope                = azurerm_container_registry.this.id
  role_definition_name = "AcrPull"
  principal_id         = each.value
}

resource "azurerm_role_assignment" "push" {
  for_each             = var.push_principal_ids
  scope                = azurerm_container_registry.this.id
  role_definition_name = "AcrPush"
  principal_id         = each.value
}
