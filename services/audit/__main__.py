"""python -m services.audit"""

from services.audit.app import create_app
from services.common.runner import run_service

run_service(create_app)
