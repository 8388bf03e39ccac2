"""python -m services.approval"""

from services.approval.app import create_app
from services.common.runner import run_service

run_service(create_app)
