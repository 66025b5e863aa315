from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.management.base import BaseCommand

from voice.recovery import afinalize_abandoned, finalize_abandoned


class Command(BaseCommand):
    help = (
        "Finalize replies left 'streaming' by a process that stopped: they are stored as interrupted, "
        "with the text they had, and open tabs are told. Servers and workers do this by themselves "
        "periodically and at start-up."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--stale-after",
            type=float,
            help="Seconds without a heartbeat after which a reply is abandoned (default: VOICE_REPLY_STALE_AFTER).",
        )
        parser.add_argument(
            "--all",
            action="store_true",
            help="Finalize every streaming reply: only when no server or worker is running.",
        )

    def handle(self, *args, stale_after, **options):
        if options["all"]:
            finalized = finalize_abandoned(everything=True)
        else:
            finalized = async_to_sync(afinalize_abandoned)(get_channel_layer(), stale_after)
        for reply in finalized:
            self.stdout.write(
                f"reply {reply.pk} (conversation {reply.conversation_id}): interrupted, "
                f"{len(reply.text)} characters kept"
            )
        self.stdout.write(f"{len(finalized)} reply(s) finalized.")
