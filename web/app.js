// Demo page glue: the recognizer element, the service worker (offline + install) and the
// install button. Everything the user sees of recognition lives in <earshot-recognizer>.
import './earshot-recognizer.js';

/** Registers the service worker that makes the app work offline once loaded. */
async function registerServiceWorker() {
    if (!('serviceWorker' in navigator)) return;
    try {
        await navigator.serviceWorker.register('./sw.js', { scope: './', type: 'classic' });
    } catch (error) {
        console.warn('earshot: no offline support, service worker failed:', error);
    }
}

/** Shows the install button when the browser offers installation. */
function setUpInstallButton() {
    const button = /** @type {HTMLButtonElement} */ (document.getElementById('install'));
    /** @type {any} */ let deferred = null;
    window.addEventListener('beforeinstallprompt', (event) => {
        event.preventDefault();
        deferred = event;
        button.hidden = false;
    });
    button.addEventListener('click', async () => {
        if (!deferred) return;
        button.hidden = true;
        deferred.prompt();
        await deferred.userChoice.catch(() => {});
        deferred = null;
    });
    window.addEventListener('appinstalled', () => { button.hidden = true; });
}

setUpInstallButton();
registerServiceWorker();
