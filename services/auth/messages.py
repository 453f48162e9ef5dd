"""What we tell people, in Spanish (the default) and English, keyed by reason."""

from __future__ import annotations

Messages = dict[str, str]

_BY_REASON: dict[str, Messages] = {
    "grant_revoked": {
        "es": "Se revocó el acceso al buzón (cambio de contraseña o revocación de sesiones)."
        " Vuelva a conectar el buzón.",
        "en": "Access to the mailbox was revoked (password change or sessions revoked)."
        " Please reconnect the mailbox.",
    },
    "refresh_token_expired": {
        "es": "La autorización caducó por inactividad. Vuelva a conectar el buzón.",
        "en": "The authorization expired after inactivity. Please reconnect the mailbox.",
    },
    "sign_in_frequency": {
        "es": "La política de su organización exige iniciar sesión de nuevo.",
        "en": "Your organisation's policy requires signing in again.",
    },
    "mfa_required": {
        "es": "Se requiere verificación en dos pasos. Vuelva a conectar el buzón y complétela.",
        "en": "Multi-factor authentication is required. Reconnect the mailbox and complete it.",
    },
    "mfa_enrollment_required": {
        "es": "Debe registrar un método de verificación en dos pasos antes de reconectar.",
        "en": "Register a multi-factor authentication method, then reconnect.",
    },
    "consent_missing": {
        "es": "Falta el consentimiento para leer el correo. Vuelva a conectar el buzón.",
        "en": "Consent to read mail is missing. Please reconnect the mailbox.",
    },
    "consent_declined": {
        "es": "Se rechazó el consentimiento. Vuelva a conectar y acepte los permisos.",
        "en": "Consent was declined. Reconnect and accept the permissions.",
    },
    "wrong_account": {
        "es": "Inició sesión con otra cuenta distinta del buzón que quería conectar."
        " Vuelva a intentarlo con la cuenta del buzón.",
        "en": "You signed in with a different account than the mailbox you wanted to connect."
        " Try again with the mailbox's account.",
    },
    "user_cancelled": {
        "es": "Se canceló el inicio de sesión. Puede intentarlo de nuevo cuando quiera.",
        "en": "Sign-in was cancelled. You can try again at any time.",
    },
    "admin_consent_required": {
        "es": "Un administrador de su organización debe autorizar la aplicación."
        " Envíele el enlace de consentimiento de administrador.",
        "en": "An administrator of your organisation must approve the application."
        " Send them the admin consent link.",
    },
    "conditional_access": {
        "es": "Una política de acceso condicional de su organización bloquea el acceso."
        " Contacte con su administrador.",
        "en": "A conditional access policy of your organisation blocks access."
        " Contact your administrator.",
    },
    "user_disabled": {
        "es": "La cuenta está deshabilitada. Contacte con su administrador.",
        "en": "The account is disabled. Contact your administrator.",
    },
    "invalid_id_token": {
        "es": "No se pudo verificar la respuesta de Microsoft para este inicio de sesión."
        " Vuelva a empezar desde el enlace.",
        "en": "Microsoft's answer could not be verified for this sign-in."
        " Please start again from the link.",
    },
    "undecryptable_token": {
        "es": "Los tokens guardados de este buzón no se pueden descifrar con las claves"
        " configuradas. Vuelva a conectar el buzón o restaure la clave retirada.",
        "en": "This mailbox's stored tokens cannot be decrypted with the configured keys."
        " Reconnect the mailbox or restore the key that was removed.",
    },
    "user_not_found": {
        "es": "La cuenta no existe en la organización. Contacte con su administrador.",
        "en": "The account does not exist in the organisation. Contact your administrator.",
    },
}

_BY_CLASS: dict[str, Messages] = {
    "reauth": {
        "es": "Hay que volver a autorizar el acceso al buzón.",
        "en": "Access to the mailbox must be authorized again.",
    },
    "admin": {
        "es": "Un administrador de su organización debe actuar para restablecer el acceso.",
        "en": "An administrator of your organisation must act to restore access.",
    },
    "config": {
        "es": "La configuración del servicio tiene un problema. Nuestro equipo ya fue avisado.",
        "en": "The service configuration has a problem. Our team has been alerted.",
    },
    "transient": {
        "es": "Microsoft no respondió. Inténtelo de nuevo en unos minutos.",
        "en": "Microsoft did not respond. Please try again in a few minutes.",
    },
}


def human_message(reason: str, reason_class: str) -> Messages:
    """Both languages, the most specific text we have."""
    return dict(_BY_REASON.get(reason) or _BY_CLASS.get(reason_class) or _BY_CLASS["transient"])
