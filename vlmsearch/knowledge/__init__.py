"""Knowledge sources that turn a recognised thing into an info card."""
