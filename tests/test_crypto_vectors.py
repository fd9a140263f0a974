"""RFC 8032 Ed25519 and BLAKE3 reference vectors through our wrappers; strict hex parsing."""

from __future__ import annotations

import pytest

from releasesim.model import crypto
from releasesim.model.crypto import (
    ReleaseSigner,
    blake3_hex,
    build_hash_of,
    parse_hash,
    parse_public_key,
    parse_signature,
    release_message,
    verify,
)
from releasesim.model.errors import MalformedInput

# RFC 8032 section 7.1 (Ed25519): (name, secret key, public key, message, signature).
_TEST_1024_MESSAGE = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98"
    "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8"
    "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc"
    "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe"
    "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef"
    "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7"
    "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2"
    "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
    "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc"
    "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07"
    "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a"
    "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e"
    "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c"
    "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8"
    "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
    "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649"
    "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3"
    "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e"
    "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5"
    "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1"
    "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c"
    "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0"
)
RFC8032_VECTORS = [
    (
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
        "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    (
        "TEST 1024",
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        _TEST_1024_MESSAGE,
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
        "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    (
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b589"
        "09351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
]
_RFC_IDS = [v[0] for v in RFC8032_VECTORS]
_MESSAGE_LENGTHS = {"TEST 1": 0, "TEST 2": 1, "TEST 3": 2, "TEST 1024": 1023, "TEST SHA(abc)": 64}


def _flip(hex_text: str, byte_index: int, bit: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_text))
    raw[byte_index] ^= 1 << bit
    return raw.hex()


@pytest.mark.parametrize(("name", "secret", "public", "message", "signature"), RFC8032_VECTORS,
                         ids=_RFC_IDS)
def test_rfc8032_vector_lengths_are_transcribed_exactly(name, secret, public, message, signature):
    assert len(bytes.fromhex(secret)) == 32
    assert len(bytes.fromhex(public)) == 32
    assert len(bytes.fromhex(message)) == _MESSAGE_LENGTHS[name]
    assert len(bytes.fromhex(signature)) == 64


@pytest.mark.parametrize(("name", "secret", "public", "message", "signature"), RFC8032_VECTORS,
                         ids=_RFC_IDS)
def test_rfc8032_signer_reproduces_public_key_and_signature(
    name, secret, public, message, signature
):
    signer = ReleaseSigner(bytes.fromhex(secret))
    assert signer.public_key == public
    assert signer.sign(bytes.fromhex(message)) == signature
    assert ReleaseSigner.from_hex(secret.upper()).public_key == public


@pytest.mark.parametrize(("name", "secret", "public", "message", "signature"), RFC8032_VECTORS,
                         ids=_RFC_IDS)
def test_rfc8032_verify_accepts_vector_and_rejects_flipped_bits(
    name, secret, public, message, signature
):
    msg = bytes.fromhex(message)
    assert verify(public, msg, signature) is True
    # A flipped bit anywhere that matters makes verification fail.
    tampered_message = msg + b"\x00" if not msg else bytes([msg[0] ^ 0x01]) + msg[1:]
    assert verify(public, tampered_message, signature) is False
    for index in (0, 31, 32, 63):
        assert verify(public, msg, _flip(signature, index)) is False, index
    for index in (0, 15, 31):
        assert verify(_flip(public, index), msg, signature) is False, index


@pytest.mark.parametrize(
    ("key", "signature"),
    [
        ("00" * 32, "00" * 64),  # low-order / degenerate key and signature
        ("ff" * 32, "ff" * 64),  # not a curve point
        ("zz" * 32, "00" * 64),  # not hex (verify expects parsed input, still must not raise)
        ("00" * 31, "00" * 64),  # wrong key length
        (RFC8032_VECTORS[0][2], "00" * 63),  # wrong signature length
    ],
)
def test_verify_returns_false_instead_of_raising(key, signature):
    assert verify(key, b"release:", signature) is False


def test_signing_seed_must_be_32_bytes():
    with pytest.raises(MalformedInput, match="32 bytes"):
        ReleaseSigner(b"\x00" * 31)
    with pytest.raises(MalformedInput, match="signing seed"):
        ReleaseSigner.from_hex("00" * 33)


# Official BLAKE3 test_vectors.json: input byte i is i % 251; first 32 bytes of the hash.
BLAKE3_VECTORS = [
    (0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"),
    (1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"),
    (1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"),
    (1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"),
    (1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"),
    (2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"),
    (2049, "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030"),
    (3072, "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2"),
    (4096, "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969"),
]


def _blake3_input(length: int) -> bytes:
    return bytes(i % 251 for i in range(length))


@pytest.mark.parametrize(
    ("length", "expected"), BLAKE3_VECTORS, ids=[str(n) for n, _ in BLAKE3_VECTORS]
)
def test_blake3_reference_vectors(length, expected):
    data = _blake3_input(length)
    assert blake3_hex(data) == expected
    assert build_hash_of(data) == expected
    assert build_hash_of(data) == expected  # the memoised path answers the same


def test_build_hash_memo_distinguishes_inputs():
    assert build_hash_of(b"a") != build_hash_of(b"b")
    assert build_hash_of(b"") == BLAKE3_VECTORS[0][1]


# release:<lowercase hash>
_HASH = BLAKE3_VECTORS[3][1]


@pytest.mark.parametrize("spelling", [_HASH, _HASH.upper(), _HASH[:32].upper() + _HASH[32:]])
def test_release_message_is_72_ascii_bytes_with_lowercase_hash(spelling):
    message = release_message(spelling)
    assert message == b"release:" + _HASH.encode("ascii")
    assert len(message) == 72


@pytest.mark.parametrize("bad", ["", _HASH[:-2], _HASH + "00", "0x" + _HASH[2:], "g" * 64, None])
def test_release_message_rejects_malformed_hash(bad):
    with pytest.raises(MalformedInput):
        release_message(bad)


_KEY = RFC8032_VECTORS[0][2]
_SIG = RFC8032_VECTORS[0][4]
_PARSERS = [
    (parse_hash, _HASH, "hash"),
    (parse_public_key, _KEY, "signer key"),
    (parse_signature, _SIG, "signature"),
]


@pytest.mark.parametrize(("parse", "value", "what"), _PARSERS, ids=[p[2] for p in _PARSERS])
@pytest.mark.parametrize("case", ["lower", "upper", "mixed"])
def test_parsers_accept_any_letter_case(parse, value, what, case):
    spelled = {
        "lower": value,
        "upper": value.upper(),
        "mixed": "".join(c.upper() if i % 2 else c for i, c in enumerate(value)),
    }[case]
    assert parse(spelled) == value


def _bad_inputs(value: str) -> list[tuple[str, object, str]]:
    """(case id, input, a fragment the message must contain)."""
    return [
        ("0x-prefix", "0x" + value, "0x"),
        ("0X-prefix", "0X" + value.upper(), "0x"),
        ("non-hex", "g" + value[1:], "not hexadecimal"),
        ("space-inside", value[:10] + " " + value[11:], "not hexadecimal"),
        ("empty", "", "not hexadecimal"),
        ("short", value[:-2], f"expected {len(value) // 2} bytes"),
        ("odd-length", value[:-1], f"expected {len(value) // 2} bytes"),
        ("long", value + "00", f"expected {len(value) // 2} bytes"),
        ("bytes", value.encode(), "got bytes"),
        ("int", 7, "got int"),
        ("none", None, "got NoneType"),
    ]


_BAD_CASES = [
    pytest.param(parse, what, bad, fragment, id=f"{what}-{case}")
    for parse, value, what in _PARSERS
    for case, bad, fragment in _bad_inputs(value)
]


@pytest.mark.parametrize(("parse", "what", "bad", "fragment"), _BAD_CASES)
def test_parsers_reject_with_a_message_naming_the_input(parse, what, bad, fragment):
    with pytest.raises(MalformedInput) as info:
        parse(bad)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{what}:")
    assert fragment in message
    if isinstance(bad, str) and bad:
        assert repr(bad[:24]).rstrip("'") in message  # the offending text, truncated


def test_parser_label_is_used_in_the_message():
    with pytest.raises(MalformedInput, match=r"^--hash: "):
        parse_hash("nope", "--hash")


def test_verify_release_binds_the_hash(signers):
    signer = signers[0]
    other = BLAKE3_VECTORS[4][1]
    signature = signer.attest(_HASH)
    assert crypto.verify_release(signer.public_key, _HASH, signature)
    assert crypto.verify_release(signer.public_key, _HASH.upper(), signature)
    assert not crypto.verify_release(signer.public_key, other, signature)
    assert not crypto.verify_release(signers[1].public_key, _HASH, signature)
    # The signature is over the 72-byte message, not the bare hash.
    assert signature == signer.sign(b"release:" + _HASH.encode())
    assert not verify(signer.public_key, _HASH.encode(), signature)
