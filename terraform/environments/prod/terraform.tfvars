# prod: zone-redundant system and GGUF pools, Postgres HA with geo-redundant backups, one GPU node
# always on. Monthly cost: docs/deploy.md.
environment   = "prod"
location      = "eastus"
address_space = "10.30.0.0/16"
zones         = ["1", "2", "3"]

kubernetes_version = "1.32"
aks_sku_tier       = "Standard"
system_vm_size     = "Standard_D4ds_v5"
system_min_count   = 2
system_max_count   = 4
gpu_vm_size        = "Standard_NC24ads_A100_v4"
gpu_zones          = []
gpu_min_count      = 1
gpu_max_count      = 4
gguf_vm_size       = "Standard_D8ds_v5"
gguf_gpu           = false
gguf_min_count     = 2
gguf_max_count     = 6

postgres_sku                   = "GP_Standard_D2ds_v5"
postgres_storage_mb            = 131072
postgres_backup_retention_days = 35
postgres_geo_redundant_backup  = true
postgres_high_availability     = true
redis_sku                      = "Standard"
redis_capacity                 = 1
storage_replication_type       = "ZRS"
key_vault_purge_protection     = true

functions_maximum_instance_count = 100
functions_instance_memory_in_mb  = 2048
gateway_db_pool_max              = 5 # 100 instances x 5 < max_connections of D2ds_v5 (859)

log_retention_days = 90
log_daily_quota_gb = -1
