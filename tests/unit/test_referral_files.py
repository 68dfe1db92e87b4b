"""The documents of a referral: a file sealed chunk by chunk under a key of its own, opening
only whole and in order; its description bound to its referral, file and writer; its key
sealed for one node's key; and what a file may be (its type by its bytes, its size)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from nacl.public import PrivateKey

from services.referrals import file_seal, file_types
from services.referrals.attachments_api import filename_of
from shared.crypto import NodeKeys, verify
from shared.errors import Forbidden, Invalid
from shared.settings import DEMO_SECRET, NodeSettings

FILE = "019ac000-0000-7000-8000-0000000000f1"
OTHER_FILE = "019ac000-0000-7000-8000-0000000000f2"
REFERRAL = "019ac000-0000-7000-8000-000000000001"
WHERE = {"referral_id": REFERRAL, "attachment_id": FILE, "by_org": "amal"}
PDF = b"%PDF-1.7\n" + os.urandom(700_000)
ALLOWED = file_types.DEFAULT_TYPES


def sealed(plain: bytes = PDF, chunk_bytes: int = 256 * 1024) -> file_seal.SealedFile:
    return file_seal.seal_file(plain, attachment_id=FILE, chunk_bytes=chunk_bytes)


def flipped(chunk: bytes, at: int = 40) -> bytes:
    return chunk[:at] + bytes([chunk[at] ^ 1]) + chunk[at + 1 :]


class TestTheStream:
    def test_a_file_opens_whole_and_byte_identical(self) -> None:
        file = sealed()
        assert len(file.chunks) == 3  # 700 kB in chunks of 256 KiB
        assert all(len(c) <= 256 * 1024 + 17 for c in file.chunks)
        assert PDF[9:100] not in b"".join(file.chunks)
        opened = file_seal.open_file(file.key, file.header, file.chunks, attachment_id=FILE)
        assert opened == PDF
        assert file.sha256 == hashlib.sha256(PDF).hexdigest()

    def test_an_altered_chunk_does_not_open(self) -> None:
        file = sealed()
        chunks = [file.chunks[0], flipped(file.chunks[1]), file.chunks[2]]
        with pytest.raises(file_seal.Tampered, match="chunk 1"):
            file_seal.open_file(file.key, file.header, chunks, attachment_id=FILE)

    def test_chunks_swapped_dropped_or_cut_off_do_not_open(self) -> None:
        file = sealed()
        a, b, c = file.chunks
        for chunks in ([b, a, c], [a, c], [a, b], [a, b, c, c]):
            with pytest.raises(file_seal.Tampered):
                file_seal.open_file(file.key, file.header, chunks, attachment_id=FILE)

    def test_a_chunk_moved_onto_another_file_does_not_open(self) -> None:
        file = sealed()
        with pytest.raises(file_seal.Tampered):
            file_seal.open_file(file.key, file.header, file.chunks, attachment_id=OTHER_FILE)

    def test_another_key_opens_nothing(self) -> None:
        file, other = sealed(), sealed()
        with pytest.raises(file_seal.Tampered):
            file_seal.open_file(other.key, file.header, file.chunks, attachment_id=FILE)

    def test_a_small_file_is_one_final_chunk(self) -> None:
        file = sealed(b"Bonjour")
        assert len(file.chunks) == 1
        assert file_seal.open_file(file.key, file.header, file.chunks, attachment_id=FILE) == (
            b"Bonjour"
        )


class TestItsDescriptionAndKey:
    def test_the_name_and_digest_open_only_where_they_were_sealed(self) -> None:
        file = sealed()
        meta = {"filename": "certificat-Awa.pdf", "sha256": file.sha256}
        box = file_seal.seal_meta(file.key, meta, **WHERE)
        assert "Awa" not in box and file.sha256 not in box
        assert file_seal.open_meta(file.key, box, **WHERE) == meta
        for moved in ({"by_org": "sanad"}, {"attachment_id": OTHER_FILE}):
            with pytest.raises(file_seal.Tampered):
                file_seal.open_meta(file.key, box, **{**WHERE, **moved})

    def test_the_file_key_opens_with_the_nodes_private_key_only(self) -> None:
        mine, theirs = PrivateKey.generate(), PrivateKey.generate()
        public = base64.b64encode(bytes(mine.public_key)).decode()
        file = sealed(b"x")
        box = file_seal.seal_key(file.key, public)
        assert file_seal.open_key(box, mine) == file.key
        with pytest.raises(file_seal.Tampered):
            file_seal.open_key(box, theirs)

    def test_the_digest_signature_names_its_file(self, tmp_path: Path) -> None:
        keys = NodeKeys.load_or_create(tmp_path / "amal")
        document = file_seal.digest_document(**WHERE, sha256="ab" * 32, size=3)
        _, signature = keys.sign(document)
        public = next(iter(keys.verifying_keys().values()))
        verify(document, signature, public)
        with pytest.raises(Forbidden):
            verify({**document, "sha256": "cd" * 32}, signature, public)


class TestWhatAFileMayBe:
    @pytest.mark.parametrize(
        ("content", "kind"),
        [
            (b"%PDF-1.4 ...", "application/pdf"),
            (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
            (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
            ("Récépissé du HCR, مرحبا\n".encode(), "text/plain"),
            (b"MZ\x90\x00\x03", None),  # a Windows program
            (b"PK\x03\x04", None),  # a zip, a docx
            (b"text with a \x00 NUL", None),
        ],
    )
    def test_a_type_is_told_by_the_first_bytes(self, content: bytes, kind: str | None) -> None:
        assert file_types.sniff(content) == kind

    def test_an_allowed_file_passes_with_its_sniffed_type(self) -> None:
        assert file_types.check_file(PDF, declared=None, allowed=ALLOWED, max_mb=10) == (
            "application/pdf"
        )
        assert file_types.check_file(
            PDF, declared="application/octet-stream", allowed=ALLOWED, max_mb=10
        ) == ("application/pdf")

    @pytest.mark.parametrize(
        ("content", "declared", "allowed", "max_mb", "why"),
        [
            (b"", None, ALLOWED, 10, "empty"),
            (PDF, None, ALLOWED, 0.5, "too large"),
            (b"MZ\x90\x00", None, ALLOWED, 10, "not allowed"),
            (b"\x89PNG\r\n\x1a\n", None, ("application/pdf",), 10, "not allowed"),
            (PDF, "image/png", ALLOWED, 10, "does not match its declared type"),
            (b"hello", "application/pdf", ALLOWED, 10, "does not match"),
        ],
    )
    def test_a_bad_file_is_refused_naming_why(
        self,
        content: bytes,
        declared: str | None,
        allowed: tuple[str, ...],
        max_mb: float,
        why: str,
    ) -> None:
        with pytest.raises(Invalid, match=why) as refused:
            file_types.check_file(content, declared=declared, allowed=allowed, max_mb=max_mb)
        assert refused.value.field == "file"

    def test_a_name_keeps_its_last_part_without_control_characters(self) -> None:
        assert file_types.clean_filename("C:\\Users\\x\\certificat.pdf") == "certificat.pdf"
        assert file_types.clean_filename("../../etc/passwd") == "passwd"
        assert file_types.clean_filename("a\x00b\nc.txt") == "abc.txt"
        for bad in (None, "", "  ", "..", "dir/"):
            with pytest.raises(Invalid):
                file_types.clean_filename(bad)

    def test_the_name_comes_from_content_disposition(self) -> None:
        assert filename_of("attachment; filename*=UTF-8''r%C3%A9c%C3%A9piss%C3%A9.pdf") == (
            "récépissé.pdf"
        )
        assert filename_of('attachment; filename="scan 1.png"') == "scan 1.png"
        assert filename_of("attachment; filename=scan.png") == "scan.png"
        assert filename_of(None) is None and filename_of("attachment") is None


class TestSettings:
    def base(self, **extra: object) -> NodeSettings:
        return NodeSettings(
            node_id="amal",
            org="amal",
            nats_url="nats://x",
            database_url="postgresql://x",
            secret_key=DEMO_SECRET,
            demo=True,
            **extra,  # type: ignore[arg-type]
        )

    def test_by_default_pdf_jpeg_png_and_text_up_to_10_mb(self) -> None:
        settings = self.base()
        assert settings.allowed_attachment_types == ALLOWED
        assert settings.attachment_max_mb == 10

    def test_the_allow_list_is_narrowed_and_refuses_what_cannot_be_told(self) -> None:
        assert self.base(attachment_types="application/pdf").allowed_attachment_types == (
            "application/pdf",
        )
        with pytest.raises(ValueError, match="application/zip"):
            self.base(attachment_types="application/pdf,application/zip")
