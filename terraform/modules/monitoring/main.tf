# Logs (Log Analytics), application telemetry (Application Insights, workspace-based) and the Azure
# Monitor workspace that managed Prometheus writes the model tiers' metrics to (KEDA reads it back).

resource "azurerm_log_analytics_workspace" "this" {
  name                = "log-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  daily_quota_gb      = var.log_daily_quota_gb
  tags                = var.tags
}

resource "azurerm_application_insights" "this" {
  name                = "appi-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  workspace_id        = azurerm_log_analytics_workspace.this.id
  application_type    = "web"
  # Telemetry is sent with the Function App's managed identity only (Monitoring Metrics Publisher).
  local_authentication_disabled = true
  tags                          = var.tags
}

resource "azurerm_monitor_workspace" "this" {
  name                = "amw-${var.name}"
  location            = var.location
  resource_group_name = var.resource_group_name
  tags                = var.tags
}
