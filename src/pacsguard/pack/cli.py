"""CLI commands of pacsguard.pack (registered by pacsguard.cli).

``pacsguard pack``, ``pacsguard unpack``, and ``pacsguard key new-identity`` /
``new-signing-key``. Secrets come from files or the environment, never from argv:
recipients (public) may be given inline.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console

from pacsguard.core.keys import check_private
from pacsguard.core.progress import Bar, duration
from pacsguard.core.say import say
from pacsguard.pack import agekeys, signing
from pacsguard.pack.errors import DecryptionFailed, KeyFileError
from pacsguard.pack.packer import pack
from pacsguard.pack.unpacker import needs_passphrase, unpack
from pacsguard.pack.volumes import parse_size

ENV_PASSPHRASE = "PACSGUARD_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
err = Console(stderr=True)


def _byte_hook(bar: Bar, label: str) -> Callable[[int, int], None]:
    """The library's ``(bytes just done, total bytes)`` callback, drawn on ``bar``."""

    started = False

    def advance(n: int, total: int) -> None:
        nonlocal started
        if not started:  # the first bytes: what came before was the check stage
            started = True
            bar.stage(label, total=total)
        bar.update(completed=bar.completed + n, total=total)

    return advance


def _not_folders(**paths: Path | list[Path] | None) -> None:
    """A folder given where a file is wanted is said as such, not as a missing file."""
    for option, value in paths.items():
        for path in value if isinstance(value, list) else [value]:
            if path is not None and path.is_dir():
                flag = "--" + option.replace("_", "-")
                raise KeyFileError(f"{flag} {path} is a folder, not a file; give the file in it")


def _read_passphrase_file(path: Path) -> str:
    if not path.is_file():
        raise KeyFileError(f"passphrase file {path} does not exist")
    check_private(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0]:
        raise KeyFileError(f"passphrase file {path} is empty")
    return lines[0]


def _prompt_passphrase(confirm: bool) -> str:
    if not sys.stdin.isatty():
        raise DecryptionFailed(
            f"no passphrase: give --passphrase-file FILE or set {ENV_PASSPHRASE}"
        )
    first = getpass.getpass("passphrase: ")
    if confirm and getpass.getpass("passphrase (again): ") != first:
        raise DecryptionFailed("the two passphrases differ")
    if not first:
        raise DecryptionFailed("an empty passphrase is not allowed")
    return first


def _passphrase(path: Path | None, confirm: bool) -> str:
    """From ``--passphrase-file``, else ``PACSGUARD_PASSPHRASE``, else a prompt."""
    if path is not None:
        return _read_passphrase_file(path)
    if os.environ.get(ENV_PASSPHRASE):
        return os.environ[ENV_PASSPHRASE]
    return _prompt_passphrase(confirm)


def _recipients(inline: list[str], files: list[Path]) -> list[agekeys.Recipient]:
    found = [agekeys.parse_recipient(text) for text in inline]
    for path in files:
        found.extend(agekeys.read_recipients_file(path))
    return found


def pack_command(
    directory: Path = typer.Argument(
        ..., metavar="FOLDER", help="The de-identified folder to send."
    ),
    output: Path = typer.Argument(..., help="The package to write (OUTPUT.001… with volumes)."),
    to: list[str] = typer.Option(
        [], "--to", metavar="RECIPIENT", help="Recipient: age1…, ssh-ed25519 or ssh-rsa key."
    ),
    to_file: list[Path] = typer.Option([], "--to-file", help="File listing recipients."),
    use_passphrase: bool = typer.Option(
        False, "--passphrase", help=f"Encrypt to a passphrase (prompt, or {ENV_PASSPHRASE})."
    ),
    passphrase_file: Path | None = typer.Option(
        None, "--passphrase-file", help="Encrypt to the passphrase in this file (mode 0600)."
    ),
    sign: Path | None = typer.Option(
        None, "--sign", help=f"Ed25519 key to sign with (or {signing.ENV_SIGNING_KEY_FILE})."
    ),
    volume_size: str | None = typer.Option(
        None,
        "--volume-size",
        metavar="SIZE",
        help="Split into volumes of this size (e.g. 500M, 4G).",
    ),
    force: bool = typer.Option(False, "--force", help="Pack despite failed checks."),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the manifest)."),
    no_ocr: bool = typer.Option(False, "--no-ocr", help="Verify headers only (faster, weaker)."),
    strict: bool = typer.Option(
        False, "--strict", help="Refuse review findings too (free text not proven safe)."
    ),
) -> None:
    """Encrypt (age) and optionally sign a de-identified folder for transfer."""
    _not_folders(to_file=to_file, passphrase_file=passphrase_file, sign=sign)
    secret = (
        _passphrase(passphrase_file, confirm=True)
        if use_passphrase or passphrase_file is not None
        else None
    )
    count = sum(1 for path in directory.rglob("*") if path.is_file()) if directory.is_dir() else 0
    bar = Bar(
        f"checking {count} files (manifest, pacsguard verify)",
        as_bytes=True,
        console=err,
        stopping="removing the partial package (nothing is left half-written)",
    )
    with bar:
        result = pack(
            directory,
            output,
            recipients=_recipients(to, to_file),
            passphrase=secret,
            signing_key=signing.signing_key_path(sign),
            volume_size=parse_size(volume_size) if volume_size else None,
            force=force,
            reason=reason,
            ocr=not no_ocr,
            strict=strict,
            progress=_byte_hook(bar, "encrypting"),
        )
    where = str(result.volumes[0]) if len(result.volumes) == 1 else f"{len(result.volumes)} volumes"
    typer.echo(
        f"packed {result.files} files ({result.bytes / 1e6:.1f} MB) into {where} in "
        f"{duration(bar.elapsed)} (checked, then encrypted at {bar.rate_text()})"
    )
    if len(result.volumes) > 1:
        typer.echo(f"  {result.volumes[0]} … {result.volumes[-1]}")
    typer.echo(
        f"signed by {result.signer_fingerprint}" if result.signer_fingerprint else "unsigned"
    )
    if result.forced and result.problems:
        say(("warning:", "yellow"), " forced past: " + "; ".join(result.problems))


def unpack_command(
    package: Path = typer.Argument(..., help="The package (or its first volume, or base name)."),
    output: Path = typer.Argument(..., help="A new folder for the files."),
    identity: Path | None = typer.Option(
        None,
        "--identity",
        "-i",
        help=f"age or SSH identity file (or {agekeys.ENV_IDENTITY_FILE}).",
    ),
    passphrase_file: Path | None = typer.Option(
        None, "--passphrase-file", help="File holding the passphrase (mode 0600)."
    ),
    verify_signer: Path | None = typer.Option(
        None, "--verify-signer", help="Require a signature by this Ed25519 public key."
    ),
) -> None:
    """Decrypt a package, check every hash and the signature, and write the files."""
    _not_folders(identity=identity, passphrase_file=passphrase_file, verify_signer=verify_signer)
    secret = _passphrase(passphrase_file, confirm=False) if needs_passphrase(package) else None
    bar = Bar(
        "decrypting and checking",
        as_bytes=True,
        console=err,
        stopping="removing the partial output (nothing appears in place)",
    )
    with bar:
        result = unpack(
            package,
            output,
            identity=identity,
            passphrase=secret,
            verify_signer=verify_signer,
            progress=_byte_hook(bar, "decrypting and checking"),
        )
    typer.echo(
        f"unpacked {result.files} files ({result.bytes / 1e6:.1f} MB) into {output} in "
        f"{duration(bar.elapsed)} ({bar.rate_text()}); every SHA-256 checked"
    )
    if result.signer_verified:
        typer.echo(f"signature verified: {result.signer_fingerprint}")
    elif result.signer_fingerprint:
        typer.echo(f"signed by {result.signer_fingerprint} (not checked: give --verify-signer)")
    else:
        typer.echo("not signed")
    if result.forced:
        preflight = result.manifest.get("preflight") or {}
        say(
            ("warning:", "yellow"),
            " the sender forced this package past its checks "
            f"(reason: {preflight.get('reason')!s}): " + "; ".join(preflight.get("problems") or []),
        )


def new_identity_command(
    path: Path = typer.Argument(
        ..., metavar="FILE", help="Where to write the identity (mode 0600)."
    ),
) -> None:
    """Create an age X25519 identity; prints its public recipient (age1…)."""
    typer.echo(agekeys.new_identity(path))


def new_signing_key_command(
    path: Path = typer.Argument(
        ..., metavar="FILE", help="Where to write the private key (mode 0600)."
    ),
) -> None:
    """Create an Ed25519 signing key (PEM) and its public key beside it (.pub)."""
    public = signing.new_signing_key(path)
    typer.echo(f"wrote signing key to {path} (mode 0600) and public key to {public}")
    typer.echo(signing.fingerprint(signing.load_public_key(public)))


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the root app and to ``pacsguard key``."""
    from pacsguard.core.cli import key_app

    app.command("pack")(pack_command)
    app.command("unpack")(unpack_command)
    key_app.command("new-identity")(new_identity_command)
    key_app.command("new-signing-key")(new_signing_key_command)
