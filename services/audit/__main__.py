"""python -m services.audit"""

from services.common.runner import run_service
from services.audit.app import create_app

run_service(create_app)
