"""Classic cross-site scripting payloads, by family, for the hostile feed text scenario.

Drawn from the families of OWASP's XSS Filter Evasion Cheat Sheet and the
PortSwigger XSS cheat sheet. Every payload, were it ever parsed as markup or
run as script, would call alert(), confirm() or prompt(), or set
window.__xss; the browser test traps all of them, and also listens for the
Content-Security-Policy violations that an injected inline script or handler
would cause. Each carries its own number, so a trap that springs names it.
"""

FAMILIES = {
    # Script elements: plain, upper case, with an external source, nested to fool a one-pass filter.
    "script tags": [
        "<script>alert(1)</script>",
        "<SCRIPT>window.__xss=2</SCRIPT>",
        '<SCRIPT SRC="http://127.0.0.1:9/xss3.js"></SCRIPT>',
        "<<SCRIPT>alert(4);//<</SCRIPT>",
        "<scr<script>ipt>alert(5)</scr</script>ipt>",
        "<script>/*</script><script>*/alert(6)</script>",
    ],
    # Event handler attributes on ordinary elements, some firing without any user action.
    "event handlers": [
        '<img src=x onerror="alert(7)">',
        "<IMG SRC=# onmouseover=\"alert('xss8')\">",
        "<body onload=alert(9)>",
        "<svg/onload=alert(10)>",
        "<details open ontoggle=alert(11)>",
        "<input autofocus onfocus=alert(12)>",
        '<video><source onerror="alert(13)">',
        '<iframe srcdoc="<script>parent.alert(14)</script>"></iframe>',
    ],
    # Breaking out of an attribute value or an element the text might be placed in.
    "attribute and element breakouts": [
        '"><img src=x onerror=alert(15)>',
        "' onmouseover='alert(16)' x='",
        "</title><script>alert(17)</script>",
        "</textarea></style><script>alert(18)</script>",
        "</script><script>window.__xss=19</script>",
    ],
    # javascript:, data: and vbscript: URLs, with the case and whitespace tricks filters miss.
    "javascript and data URLs": [
        "javascript:alert(20)",
        "JaVaScRiPt:window.__xss=21",
        " javascript:alert(22)",
        "java\tscript:alert(23)",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgyNCk8L3NjcmlwdD4=",
        "data:text/html,<script>alert(25)</script>",
        "vbscript:msgbox(26)",
        '<a href="javascript:alert(27)">click me</a>',
        '<iframe src="javascript:alert(28)"></iframe>',
    ],
    # Entity- and escape-encoded markup, which a double decode would turn into live markup.
    "encoded variants": [
        "&lt;script&gt;alert(29)&lt;/script&gt;",
        "&#60;script&#62;alert(30)&#60;/script&#62;",
        # javascript:alert(31), every character a decimal entity
        "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;"
        "&#97;&#108;&#101;&#114;&#116;&#40;&#51;&#49;&#41;>",
        "jav&#x09;ascript:alert(32)",
        "%3Cscript%3Ealert(33)%3C/script%3E",
        "\\u003cscript\\u003ealert(34)\\u003c/script\\u003e",
    ],
    # SVG and MathML, whose parsing rules differ from HTML's.
    "SVG and MathML": [
        "<svg><script>alert(35)</script></svg>",
        "<svg><animate onbegin=alert(36) attributeName=x dur=1s>",
        '<svg><a xlink:href="javascript:alert(37)"><text x="20" y="20">xss</text></a></svg>',
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(38)>",
    ],
    # Broken, unclosed and commented markup that a lenient parser repairs into something live.
    "broken markup": [
        '<img """><script>alert(39)</script>">',
        "<img src=x onerror=alert(40)//",
        "<!--<img src=x onerror=alert(41)>-->",
        "<![CDATA[<script>alert(42)</script>]]>",
        '<object data="javascript:alert(43)">',
        '<meta http-equiv="refresh" content="0;url=javascript:alert(44)">',
        "<style>@import 'http://127.0.0.1:9/xss45.css';</style>",
    ],
    # Template and script-context injections, for a page that would build markup from strings.
    "template injections": [
        "{{constructor.constructor('alert(46)')()}}",
        "${alert(47)}",
        "');alert(48);//",
    ],
}

PAYLOADS = [payload for family in FAMILIES.values() for payload in family]
