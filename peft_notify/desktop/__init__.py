"""The desktop side without Qt: job client, dispatch, history, settings, autostart.

Everything here runs under plain asyncio (``watch``) as well as under the app's qasync loop;
only :mod:`peft_notify.app` imports Qt.
"""
