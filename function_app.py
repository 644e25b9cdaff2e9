"""Azure Functions entry point: build the app and register the gateway's blueprint. Nothing here
connects to anything; clients are built on the first request."""

import azure.functions as func

from functions.blueprint import build_blueprint
from functions.gateway import Gateway

# API keys and Entra tokens are checked by the gateway itself, so Functions keys are not required.
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(build_blueprint(Gateway()))
