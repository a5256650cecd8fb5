# -*- coding: utf-8 -*-
# Copyright: certfleet.pki contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pickup portal's words in English and Japanese, and the advice per format and operating system (private
module_utils).

The person reading these is not an administrator: short sentences, no jargon, and always what to do next.
"""

from __future__ import annotations

import re

LANGUAGES = ('en', 'ja')
DEFAULT_LANGUAGE = 'en'

MESSAGES = {
    'en': {
        'title': 'Certificate pickup',
        'issuer': 'Issued by %s',
        'pin_heading': 'Enter your PIN',
        'pin_intro': 'You received an access PIN separately from this link (for example by text message or by your '
                     'registration officer). Enter it to pick up your certificate.',
        'pin_label': 'Access PIN (8 digits)',
        'pin_submit': 'Continue',
        'attempts_left': 'Attempts left before the pickup locks: %d',
        'wrong_pin': 'The PIN is wrong. Attempts left: %d',
        'locked': 'The PIN was wrong too many times and this pickup is now locked. Ask your registration officer '
                  'for a new one.',
        'throttled': 'Too many attempts from your network. Wait a few minutes and try again.',
        'confirm_heading': 'Check and download',
        'confirm_intro': 'This is the certificate that will be downloaded. It can be downloaded only %d more time(s).',
        'subject': 'Name on the certificate',
        'serial': 'Serial number',
        'valid_until': 'Valid until',
        'format': 'File type',
        'advice_heading': 'How to install it',
        'download': 'Download the certificate',
        'after_download': 'When the download has finished, continue here:',
        'continue': 'I have the file',
        'done_heading': 'Download complete',
        'done_intro': 'Keep the file private and delete it once the certificate is installed. Never send it to '
                      'anyone; the PIN opens it.',
        'renewal_intro': 'This certificate replaces your old one (serial %s). Once the new one works, tell us so '
                         'that the old one can be switched off.',
        'confirm_replacement': 'I have installed the new certificate',
        'replaced_heading': 'Thank you',
        'replaced_intro': 'The old certificate (serial %s) has been switched off. Only the new one works from now on.',
        'not_downloaded': 'The new certificate has not been downloaded yet.',
        'unavailable_heading': 'This link is not available',
        'unavailable': 'This pickup link is not valid or no longer available. Ask your registration officer for a '
                       'new one.',
        'expired_form': 'This page has expired. Open the link from your e-mail again.',
        'forbidden': 'The request could not be checked. Open the link from your e-mail again.',
        'not_found': 'There is nothing here. Open the link from your e-mail.',
        'error': 'Something went wrong on our side. Try again later or contact your registration officer.',
        'language': '日本語',
    },
    'ja': {
        'title': '証明書の受け取り',
        'issuer': '発行者: %s',
        'pin_heading': 'PIN を入力してください',
        'pin_intro': 'アクセス PIN はこのリンクとは別に(SMS や登録担当者から)お知らせしています。'
                     'PIN を入力して証明書を受け取ってください。',
        'pin_label': 'アクセス PIN(8 桁)',
        'pin_submit': '次へ',
        'attempts_left': 'ロックされるまでの残り回数: %d',
        'wrong_pin': 'PIN が違います。残り回数: %d',
        'locked': 'PIN の誤りが多すぎたため、この受け取りはロックされました。'
                  '登録担当者に新しい受け取りを依頼してください。',
        'throttled': 'お使いのネットワークからの試行が多すぎます。数分待ってからもう一度お試しください。',
        'confirm_heading': '内容を確認してダウンロード',
        'confirm_intro': 'ダウンロードされる証明書は次のとおりです。ダウンロードできるのはあと %d 回です。',
        'subject': '証明書の名義',
        'serial': 'シリアル番号',
        'valid_until': '有効期限',
        'format': 'ファイルの種類',
        'advice_heading': 'インストール方法',
        'download': '証明書をダウンロード',
        'after_download': 'ダウンロードが終わったら、こちらから進んでください:',
        'continue': 'ファイルを受け取りました',
        'done_heading': 'ダウンロード完了',
        'done_intro': 'ファイルは他人に見られない場所に保管し、インストール後は削除してください。'
                      '誰にも送らないでください。PIN でファイルを開けます。',
        'renewal_intro': 'この証明書は以前の証明書(シリアル %s)を置き換えます。新しい証明書が使えることを確認したら、'
                         '古い証明書を無効にするためにお知らせください。',
        'confirm_replacement': '新しい証明書をインストールしました',
        'replaced_heading': 'ありがとうございました',
        'replaced_intro': '古い証明書(シリアル %s)は無効になりました。今後は新しい証明書のみ使えます。',
        'not_downloaded': '新しい証明書はまだダウンロードされていません。',
        'unavailable_heading': 'このリンクは使えません',
        'unavailable': 'この受け取りリンクは無効か、すでに使えなくなっています。'
                       '登録担当者に新しいリンクを依頼してください。',
        'expired_form': 'このページの有効期限が切れました。メールのリンクをもう一度開いてください。',
        'forbidden': 'リクエストを確認できませんでした。メールのリンクをもう一度開いてください。',
        'not_found': 'ここには何もありません。メールのリンクを開いてください。',
        'error': 'システムでエラーが発生しました。しばらくしてからお試しいただくか、登録担当者に連絡してください。',
        'language': 'English',
    },
}

FORMAT_NAMES = {
    'en': {'pkcs12-modern': 'PKCS#12 file (.p12)', 'pkcs12-legacy': 'PKCS#12 file for older systems (.p12)',
           'mobileconfig': 'Configuration profile for iPhone, iPad and Mac (.mobileconfig)'},
    'ja': {'pkcs12-modern': 'PKCS#12 ファイル(.p12)', 'pkcs12-legacy': '旧システム向け PKCS#12 ファイル(.p12)',
           'mobileconfig': 'iPhone・iPad・Mac 用構成プロファイル(.mobileconfig)'},
}

# Advice per operating system of the browser; the format decides only where it differs (a profile on Apple).
ADVICE = {
    'en': {
        'windows': 'Open the downloaded .p12 file, choose "Current User", and enter the PIN when asked. Edge and '
                   'Chrome use it at once; in Firefox import it under Settings > Certificates > Your Certificates.',
        'macos': 'Open the downloaded file: Keychain Access adds it to your login keychain after you enter the PIN. '
                 'Firefox users import it under Settings > Certificates > Your Certificates.',
        'ios': 'Open Settings > Profile Downloaded, tap Install and enter your device passcode, then the PIN.',
        'android': 'Open Settings > Security > Encryption & credentials > Install a certificate > VPN & app user '
                   'certificate, pick the downloaded file and enter the PIN.',
        'linux': 'In Chrome or Chromium open Settings > Privacy and security > Manage certificates > Your '
                 'certificates > Import; in Firefox Settings > Certificates > Your Certificates > Import. Enter the '
                 'PIN when asked.',
        'other': 'Import the downloaded file into your browser or system certificate store and enter the PIN when '
                 'asked.',
        'mobileconfig': 'On iPhone or iPad open Settings > Profile Downloaded and tap Install; on a Mac open System '
                        'Settings > Privacy & Security > Profiles. Enter the PIN when asked.',
    },
    'ja': {
        'windows': 'ダウンロードした .p12 ファイルを開き、「現在のユーザー」を選んで、求められたら PIN を入力します。'
                   'Edge と Chrome ですぐに使えます。Firefox では「設定 > 証明書 > あなたの証明書」から読み込みます。',
        'macos': 'ダウンロードしたファイルを開き、PIN を入力すると'
                 'キーチェーンアクセスがログインキーチェーンに追加します。'
                 'Firefox では「設定 > 証明書 > あなたの証明書」から読み込みます。',
        'ios': '「設定 > プロファイルがダウンロードされました」を開き、「インストール」をタップして'
               'デバイスのパスコード、次に PIN を入力します。',
        'android': '「設定 > セキュリティ > 暗号化と認証情報 > 証明書のインストール > VPN とアプリユーザー証明書」から'
                   'ダウンロードしたファイルを選び、PIN を入力します。',
        'linux': 'Chrome / Chromium では「設定 > プライバシーとセキュリティ '
                 '> 証明書の管理 > あなたの証明書 > インポート」、'
                 'Firefox では「設定 > 証明書 > あなたの証明書 > 読み込む」を使い、PIN を入力します。',
        'other': 'ダウンロードしたファイルをブラウザーまたはシステムの証明書ストアに読み込み、'
                 '求められたら PIN を入力します。',
        'mobileconfig': 'iPhone・iPad では「設定 > プロファイルがダウンロードされました」から「インストール」、'
                        'Mac では「システム設定 > プライバシーとセキュリティ '
                        '> プロファイル」を開き、PIN を入力します。',
    },
}

_SYSTEMS = (('ios', re.compile(r'iPhone|iPad|iPod')), ('android', re.compile(r'Android')),
            ('windows', re.compile(r'Windows')), ('macos', re.compile(r'Macintosh|Mac OS X')),
            ('linux', re.compile(r'Linux|X11|CrOS')))


def operating_system(user_agent: str) -> str:
    """The person's system as far as the browser tells it; only for advice, never for a decision."""
    for name, pattern in _SYSTEMS:
        if pattern.search(user_agent or ''):
            return name
    return 'other'


def advice(language: str, format_name: str, user_agent: str) -> str:
    system = operating_system(user_agent)
    if format_name == 'mobileconfig' and system != 'ios':
        system = 'mobileconfig'
    return ADVICE[language][system]


def choose_language(query_lang: str | None, cookie_lang: str | None, accept_language: str | None) -> str:
    """?lang= wins, then the remembered choice, then the browser's first supported language."""
    for candidate in (query_lang, cookie_lang):
        if candidate in LANGUAGES:
            return candidate
    ranked = []
    for position, part in enumerate((accept_language or '').split(',')):
        tag, _sep, params = part.strip().partition(';')
        quality = 1.0
        if params.strip().startswith('q='):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower().split('-')[0]))
    for _quality, _position, tag in sorted(ranked):
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE
