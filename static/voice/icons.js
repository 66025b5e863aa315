// Icons from the page's sprite (templates/voice/icons.svg), for elements built here.

const SVG = "http://www.w3.org/2000/svg";

/** A decorative icon: screen readers hear the element's own label instead. */
export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "icon");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const use = document.createElementNS(SVG, "use");
  use.setAttribute("href", `#icon-${name}`);
  svg.append(use);
  return svg;
}

/** Swap the icon inside ``element``. */
export function setIcon(element, name) {
  element.querySelector("svg.icon use")?.setAttribute("href", `#icon-${name}`);
}

/** A button showing only an icon, named for screen readers by ``label``, with ``title`` as its tooltip. */
export function iconButton(name, label, className, title) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `icon-button ${className}`;
  button.setAttribute("aria-label", label);
  button.title = title;
  button.append(icon(name));
  return button;
}
