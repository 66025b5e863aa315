// Keeps the newest message in view while the reader is at the bottom; a
// reader who scrolls up is left alone, with a "Jump to latest" button.

// Within this many pixels of the end counts as "at the bottom".
const SLACK = 48;
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

export class Follower {
  constructor(scroller, jumpButton) {
    this.scroller = scroller;
    this.jumpButton = jumpButton;
    this.following = true;
    this.lastTop = scroller.scrollTop;
    scroller.addEventListener("scroll", () => this.#onScroll(), { passive: true });
    jumpButton.addEventListener("click", () => {
      this.following = true;
      this.toEnd("smooth");
      this.scroller.focus({ preventScroll: true }); // the button hides: focus must not fall to the page
    });
  }

  get atEnd() {
    const { scrollTop, clientHeight, scrollHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight <= SLACK;
  }

  /** Content grew: follow it if the reader is following. */
  grew(behavior = "smooth") {
    if (this.following) this.toEnd(behavior);
    else this.#showJump();
  }

  toEnd(behavior = "instant") {
    // Smooth only for readers who have not asked for less motion.
    this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: reducedMotion.matches ? "instant" : behavior });
    this.jumpButton.hidden = true;
  }

  #onScroll() {
    const top = this.scroller.scrollTop;
    // Only the reader scrolls up: our own scrolls go down, and growth leaves scrollTop alone.
    if (top < this.lastTop - 2 && !this.atEnd) this.following = false;
    if (this.atEnd) this.following = true;
    this.lastTop = top;
    this.#showJump();
  }

  #showJump() {
    this.jumpButton.hidden = this.following || this.atEnd;
  }
}
