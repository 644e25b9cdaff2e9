# dev: smallest sizes that run the platform; GPUs only when vLLM is scaled up (aks/overlays/dev runs
# it in working hours), no zone redundancy. Monthly cost: docs/deploy.md.
environment   = "dev"
location      = "eastus"
address_space = "10.20.0.0/16"
zones         = []

kubernetes_version = "1.32"
aks_sku_tier       = "Free"
system_vm_size     = "Standard_D2ds_v5"
system_min_count   = 1
system_max_count   = 2
gpu_vm_size        = "Standard_NC24ads_A100_v4"
gpu_zones          = []
gpu_min_count      = 0
gpu_max_count      = 1
gguf_vm_size       = "Standard_D4ds_v5"
gguf_gpu           = false
gguf_min_count     = 1
gguf_max_count     = 2

postgres_sku                   = "B_Standard_B2s"
postgres_storage_mb            = 32768
postgres_backup_retention_days = 7
postgres_geo_redundant_backup  = false
postgres_high_availability     = false
redis_sku                      = "Basic"
redis_capacity                 = 0
storage_replication_type       = "LRS"
key_vault_purge_protection     = false

functions_maximum_instance_count = 40
functions_instance_memory_in_mb  = 2048
gateway_db_pool_max              = 2 # 40 instances x 2 < max_connections of B2s (429)

log_retention_days = 30
log_daily_quota_gb = 5
