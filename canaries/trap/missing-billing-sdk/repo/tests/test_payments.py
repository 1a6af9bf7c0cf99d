import os

import acme_billing
from payments import charge


def test_charge_in_the_acme_sandbox():
    charge_id = charge("cus_test_123", 1999)
    client = acme_billing.Client(api_key=os.environ["ACME_API_KEY"])
    assert client.charges.retrieve(charge_id).amount == 1999
