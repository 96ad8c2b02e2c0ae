import unittest

from stemtrace.scrub import FILTERED, Scrubber, is_sensitive, truncate_text


class ScrubTest(unittest.TestCase):
    def test_sentry_style_keys_are_caught(self):
        for key in ["password", "api_key", "apiKey", "X-Auth-Token", "client_secret", "credit_card", "session_id", "Authorization", "db_passwd", "access_token"]:
            self.assertTrue(is_sensitive(key), key)

    def test_innocent_keys_are_kept(self):
        for key in ["author", "max_tokens", "keyboard", "monkey", "passage", "tokenizer_name", "user_id", "key", "name"]:
            self.assertFalse(is_sensitive(key), key)

    def test_extra_and_safe_keys(self):
        self.assertTrue(is_sensitive("tenant", extra={"tenant"}))
        self.assertFalse(is_sensitive("password", safe={"password"}))

    def test_nested_values_are_masked_and_json_safe(self):
        scrub = Scrubber()
        out = scrub({"user": {"password": "hunter2", "name": "ann"}, "items": (1, 2), "when": object()})
        self.assertEqual(out["user"], {"password": FILTERED, "name": "ann"})
        self.assertEqual(out["items"], [1, 2])
        self.assertIn("__repr__", out["when"])

    def test_scrubbing_off_still_truncates(self):
        scrub = Scrubber(enabled=False, cap=10)
        self.assertEqual(scrub({"password": "x"}), {"password": "x"})
        self.assertEqual(scrub("a" * 25), "a" * 10 + "…[truncated 15 chars]")

    def test_truncate_marker(self):
        self.assertEqual(truncate_text("abcdef", 3), "abc…[truncated 3 chars]")
        self.assertEqual(truncate_text("abc", 3), "abc")


if __name__ == "__main__":
    unittest.main()
