from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from voice.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key for a user. The key is printed alone on the last line, once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the key is for.")

    def handle(self, *args, username, name, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        key, plain = ApiKey.issue(user, name)
        self.stdout.write(f"API key {key} created. It is not stored: keep it now.")
        self.stdout.write(plain)
