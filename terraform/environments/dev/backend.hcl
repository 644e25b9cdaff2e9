# terraform init -backend-config=backend.hcl \
#   -backend-config=resource_group_name=$TFSTATE_RESOURCE_GROUP \
#   -backend-config=storage_account_name=$TFSTATE_STORAGE_ACCOUNT
container_name   = "tfstate"
key              = "llmp-dev.tfstate"
use_azuread_auth = true
