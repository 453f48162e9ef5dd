"""Headless Debian Chromium driven through chromedriver, for the browser tests.

Offline by construction: the driver and browser are the Debian packages (no Selenium
Manager download), and every background call home is switched off.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def spki_hash(https_url: str) -> str:
    """base64(sha256(SubjectPublicKeyInfo)) of the certificate a server presents.

    Chromium then trusts exactly that key (``--ignore-certificate-errors-spki-list``)
    instead of ignoring every certificate error.
    """
    parts = urlsplit(https_url)
    pem = ssl.get_server_certificate((parts.hostname or "127.0.0.1", parts.port or 443))
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def chromium(profile_dir: Path, *, trusted_spki: tuple[str, ...] = ()) -> webdriver.Chrome:
    """A fresh browser on its own profile, asking for Spanish pages like our users."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container: the setuid sandbox is unavailable
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-proxy-server",
        "--window-size=1280,900",
        "--lang=es",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "es-ES,es"})
    if trusted_spki:
        options.add_argument(f"--ignore-certificate-errors-spki-list={','.join(trusted_spki)}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver
