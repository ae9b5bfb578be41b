"""Prints the TOTP code of a base32 SECRET at TIME (Unix seconds; now by default), as
computed by PyPI pyotp: the independent peer Gatehouse's software tokens are checked against."""

import sys
import time

import pyotp


def main() -> None:
    secret = sys.argv[1]
    at = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
    print(pyotp.TOTP(secret).at(at))


if __name__ == "__main__":
    main()
