# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pickup portal under its production server (gunicorn) and headless Chromium driven by Selenium through
Debian's chromedriver, for tests/integration/test_pickup_portal.py."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from browsers_support import free_port

CHROMEDRIVER = '/usr/bin/chromedriver'
PORTAL_MODULE = 'ansible_collections.certfleet.pki.plugins.module_utils.portal.app:application'
DESKTOP = (1280, 800)
PHONE = (390, 844)


def gunicorn_binary() -> str | None:
    beside = pathlib.Path(sys.executable).parent / 'gunicorn'
    return str(beside) if beside.exists() else shutil.which('gunicorn')


def chromium_binary() -> str | None:
    return shutil.which('chromium') or shutil.which('chromium-browser')


def skip_without_parts() -> None:
    """Skip, saying what is missing, when this machine lacks a real part."""
    missing = []
    if gunicorn_binary() is None:
        missing.append('gunicorn (pip install -r requirements-dev.txt)')
    if chromium_binary() is None:
        missing.append('chromium (apt)')
    if not os.path.exists(CHROMEDRIVER):
        missing.append('%s (apt chromium-driver)' % CHROMEDRIVER)
    try:
        import selenium  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError:
        missing.append('selenium (pip install -r requirements-dev.txt)')
    for tool in ('nginx', 'curl', 'openssl'):
        if shutil.which(tool) is None:
            missing.append('%s (apt)' % tool)
    if missing:
        pytest.skip('the pickup portal test needs: %s' % ', '.join(missing))


class PortalServer:
    """gunicorn with sync workers serving the portal on 127.0.0.1, as the role's systemd unit starts it."""

    def __init__(self, folder: pathlib.Path, collections: pathlib.Path, settings: dict):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        self.port = free_port()
        self.base_url = 'http://127.0.0.1:%d' % self.port
        self.config = folder / 'portal.json'
        self.config.write_text(json.dumps(dict(settings, base_url=self.base_url)))
        os.chmod(self.config, 0o600)
        self.log = folder / 'gunicorn.log'
        self.env = dict(os.environ, PYTHONPATH=str(collections), CERTFLEET_PORTAL_CONFIG=str(self.config))
        self.process = None

    def start(self) -> None:
        command = [gunicorn_binary(), '--workers', '2', '--worker-class', 'sync', '--bind',
                   '127.0.0.1:%d' % self.port, '--error-logfile', str(self.log), '--log-level', 'info',
                   '--capture-output', '--no-control-socket', PORTAL_MODULE]
        self.process = subprocess.Popen(command, env=self.env, cwd=str(self.folder), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError('gunicorn exited: %s' % self.log_text())
            try:
                with urllib.request.urlopen(self.base_url + '/healthz', timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise AssertionError('gunicorn did not answer: %s' % self.log_text())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ''


def post(url: str, fields: dict, cookies: dict | None = None) -> tuple:
    """(status, body) of a form POST outside the browser."""
    data = urllib.parse.urlencode(fields).encode('ascii')
    request = urllib.request.Request(url, data=data, method='POST')
    if cookies:
        request.add_header('Cookie', '; '.join('%s=%s' % item for item in cookies.items()))
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Browser:
    """Headless Chromium through Selenium and /usr/bin/chromedriver (no Selenium Manager, no network)."""

    def __init__(self, folder: pathlib.Path, screenshots: pathlib.Path | None):
        from selenium import webdriver  # pylint: disable=import-outside-toplevel
        from selenium.webdriver.chrome.service import Service  # pylint: disable=import-outside-toplevel
        self.downloads = folder / 'downloads'
        self.downloads.mkdir(parents=True, exist_ok=True)
        self.screenshots = screenshots
        options = webdriver.ChromeOptions()
        options.binary_location = chromium_binary()
        for flag in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                     '--disable-background-networking', '--disable-component-update', '--no-first-run',
                     '--disable-sync', '--lang=en-US', '--user-data-dir=%s' % (folder / 'profile'),
                     '--window-size=%d,%d' % DESKTOP):
            options.add_argument(flag)
        options.add_experimental_option('prefs', {
            'download.default_directory': str(self.downloads), 'download.prompt_for_download': False,
            'safebrowsing.enabled': False, 'intl.accept_languages': 'en-US,en'})
        service = Service(executable_path=CHROMEDRIVER, log_output=str(folder / 'chromedriver.log'))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(60)
        self.driver.execute_cdp_cmd('Browser.setDownloadBehavior',
                                    {'behavior': 'allow', 'downloadPath': str(self.downloads)})

    def quit(self) -> None:
        self.driver.quit()

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, element_id: str):
        from selenium.webdriver.common.by import By  # pylint: disable=import-outside-toplevel
        return self.driver.find_element(By.ID, element_id)

    def heading(self) -> str:
        return self.find('heading').text

    def click(self, element_id: str) -> None:
        """Click a button that leads to a new page, and wait for that page.

        The old document is marked first and the wait ends when a document without the mark is complete: a page
        with the same heading (a wrong PIN) counts too. Right after a download the old document can be briefly in
        flux ("node does not belong to the document"): the click is then tried again."""
        from selenium.common.exceptions import WebDriverException  # pylint: disable=import-outside-toplevel
        from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=import-outside-toplevel
        for attempt in range(5):
            try:
                self.driver.execute_script('window.certfleetOldPage = true;')
                self.find(element_id).click()
                break
            except WebDriverException:
                if attempt == 4:
                    raise
                time.sleep(0.5)
        WebDriverWait(self.driver, 30).until(lambda driver: driver.execute_script(
            'return window.certfleetOldPage === undefined && document.readyState === "complete";'))

    def download(self) -> None:
        """The download button: the page stays, the file arrives (see ``wait_for_download``)."""
        self.find('download').click()

    def enter_pin(self, pin: str) -> None:
        field = self.find('pin')
        field.clear()
        field.send_keys(pin)
        self.click('submit-pin')

    def cookies(self) -> dict:
        return {cookie['name']: cookie['value'] for cookie in self.driver.get_cookies()}

    def wait_for_download(self, name: str, timeout: float = 30) -> pathlib.Path:
        target = self.downloads / name
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            partial = list(self.downloads.glob('*.crdownload'))
            if target.exists() and not partial and target.stat().st_size > 0:
                return target
            time.sleep(0.2)
        raise AssertionError('no %s downloaded; folder: %s' % (name, sorted(os.listdir(self.downloads))))

    def shoot(self, name: str) -> None:
        """Screenshots at desktop and phone widths, when CERTFLEET_SCREENSHOTS_DIR asks for them."""
        if self.screenshots is None:
            return
        self.screenshots.mkdir(parents=True, exist_ok=True)
        for label, (width, height), mobile in (('desktop', DESKTOP, False), ('phone', PHONE, True)):
            self.driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', {
                'width': width, 'height': height, 'deviceScaleFactor': 1, 'mobile': mobile})
            time.sleep(0.2)  # one layout pass at the new width
            self.driver.save_screenshot(str(self.screenshots / ('portal-%s-%s.png' % (name, label))))
        self.driver.execute_cdp_cmd('Emulation.clearDeviceMetricsOverride', {})
