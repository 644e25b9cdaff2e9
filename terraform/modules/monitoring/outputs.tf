output "log_analytics_workspace_id" {
  description = "ID of the Log Analytics workspace (AKS Container Insights, diagnostics)."
  value       = azurerm_log_analytics_workspace.this.id
}

output "application_insights_id" {
  description = "ID of Application Insights."
  value       = azurerm_application_insights.this.id
}

output "application_insights_connection_string" {
  description = "Connection string of Application Insights (not a secret: ingestion needs Entra auth)."
  value       = azurerm_application_insights.this.connection_string
  sensitive   = true
}

output "monitor_workspace_id" {
  description = "ID of the Azure Monitor workspace (managed Prometheus)."
  value       = azurerm_monitor_workspace.this.id
}

output "prometheus_query_endpoint" {
  description = "PromQL query endpoint of the Azure Monitor workspace (KEDA's Prometheus scaler reads it)."
  value       = azurerm_monitor_workspace.this.query_endpoint
}
