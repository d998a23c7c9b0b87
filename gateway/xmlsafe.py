"""The one hardened XML parser: SOAP requests, SAML messages and SPML replies.

What is refused, and the words for it, are decided here, not by the libxml2 that
lxml happens to bundle (libxml2 2.14 stops billion laughs and deep nesting with
errors of its own that older versions do not give):

- **A DOCTYPE**, and with it every entity declaration, external DTD and XXE: the
  prolog (what stands before the root element) is scanned before libxml2 sees the
  document, in one pass over it. libxml2 then parses with entity resolution, DTD
  loading and network access off, so nothing is expanded even if the scan were
  wrong; a DOCTYPE it still reports is refused the same way.
- **Nesting deeper than a limit**: checked on the parsed tree (an XPath of one
  step per level, in C). When libxml2 stops on its own limit (256 levels, above
  ours) or on any other error, the tree it recovers up to there is checked the
  same way, so a too deep document gets our message whatever libxml2 said.
- **Encodings other than UTF-8, UTF-16 and ASCII-compatible ones** (UTF-32,
  EBCDIC): SOAP and SAML use UTF-8 or UTF-16.

Comments and processing instructions are dropped, XInclude is never processed
(lxml only does so when asked), and huge-tree mode stays off. Everything is
linear in the size of the document. Size limits belong to the caller (the HTTP
body limit, SAML's 256 KiB).
"""

from __future__ import annotations

import codecs
import re
from functools import cache

from lxml import etree

from .errors import InvalidSyntax

DEFAULT_MAX_DEPTH = 64

_OPTIONS = dict(resolve_entities=False, no_network=True, load_dtd=False,
                dtd_validation=False, huge_tree=False, remove_comments=True, remove_pis=True)
_PARSER = etree.XMLParser(**_OPTIONS)
_RECOVER = etree.XMLParser(recover=True, **_OPTIONS)

# byte-order marks and the first bytes of '<?' in encodings without one (XML 1.0 F.1)
_UTF16 = ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
          (b"<\x00?\x00", "utf-16-le"), (b"\x00<\x00?", "utf-16-be"))
_UNSUPPORTED = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, b"<\x00\x00\x00", b"\x00\x00\x00<",
                b"\x00\x00<\x00", b"\x00<\x00\x00", b"\x4c\x6f\xa7\x94")  # UTF-32, EBCDIC '<?xm'


class _Prolog:
    """The prolog scanner for one representation (bytes or str) of the document."""

    def __init__(self, kind: type):
        enc = (lambda s: s.encode()) if kind is bytes else (lambda s: s)
        self.space = re.compile(enc(r"[ \t\r\n]*"))
        self.pi, self.pi_end = enc("<?"), enc("?>")
        self.comment, self.comment_end = enc("<!--"), enc("-->")
        self.markup = enc("<!")

    def has_declaration(self, doc, start: int) -> bool:
        """Whether markup declarations (``<!DOCTYPE``, ``<!ENTITY``…) stand in the prolog.

        Steps over white space, processing instructions (the XML declaration among them)
        and comments; stops at the root element, or at anything else, which libxml2 then
        reports as not well-formed. Each step moves forward: one pass at most."""
        i, n = start, len(doc)
        while i < n:
            i = self.space.match(doc, i).end()
            if doc.startswith(self.comment, i):
                end = doc.find(self.comment_end, i + 4)
                i = n if end < 0 else end + 3
            elif doc.startswith(self.pi, i):
                end = doc.find(self.pi_end, i + 2)
                i = n if end < 0 else end + 2
            else:
                return doc.startswith(self.markup, i)
        return False


_BYTES, _TEXT = _Prolog(bytes), _Prolog(str)


def _has_doctype(data: bytes) -> bool:
    if data.startswith(_UNSUPPORTED):
        raise InvalidSyntax("The XML is in an unsupported encoding (UTF-8 or UTF-16 expected)")
    for mark, codec in _UTF16:
        if data.startswith(mark):
            text = data.decode(codec, errors="replace")
            return _TEXT.has_declaration(text, 1 if text.startswith("\ufeff") else 0)
    return _BYTES.has_declaration(data, 3 if data.startswith(codecs.BOM_UTF8) else 0)


@cache
def _deeper_than(levels: int) -> etree.XPath:
    """Whether a tree has an element deeper than ``levels``: one child step per level,
    each over the elements of one depth, so linear in the tree (and done in C)."""
    return etree.XPath("boolean(/" + "/".join(["*"] * (levels + 1)) + ")")


def parse(data: bytes, what: str, max_depth: int = DEFAULT_MAX_DEPTH) -> etree._Element:
    """The root element of ``data``; InvalidSyntax (a client's mistake) for anything unsafe
    or broken. ``what`` names the document in the DOCTYPE refusal ("a SOAP message")."""
    if not data.strip():
        raise InvalidSyntax("The XML is empty")
    doctype = f"A DOCTYPE is not allowed in {what}"
    if _has_doctype(data):
        raise InvalidSyntax(doctype)
    too_deep = InvalidSyntax(f"The XML is nested deeper than {max_depth} levels")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        # libxml2 may have stopped on a limit of its own (256 levels) after ours was
        # passed: what it could read says whether ours was
        partial = etree.fromstring(data, _RECOVER)
        if partial is not None and _deeper_than(max_depth)(partial):
            raise too_deep from None
        raise InvalidSyntax(f"The XML is not well-formed: {exc.msg}") from None
    if _deeper_than(max_depth)(root):
        raise too_deep
    if root.getroottree().docinfo.doctype:
        raise InvalidSyntax(doctype)
    return root
