# Das Mitgliederportal und die Wartungsseite, auf Deutsch (für die Deutschsprachige Gemeinschaft).
# Jede Nachricht steht in fr.ftl, de.ftl und en.ftl, mit denselben Variablen:
# Der Test `every_key_is_in_every_language_and_used` in src/i18n.rs prüft es.

## Der Rahmen jeder Seite

skip-link = Zum Inhalt springen
nav-main = Hauptnavigation
nav-home = Startseite
signed-in-as = Angemeldet als { $user }
language-switch = Sprache des Portals

## Seitentitel

title-home = Startseite
title-sites = Meine Websites
title-ask = Website beantragen
title-request = Mein Antrag
title-approvals = Zu genehmigende Anträge
title-forbidden = Zugriff verweigert
title-not-found = Nicht gefunden
title-unavailable = Dienst nicht verfügbar
title-sign-in = Anmeldung erforderlich
title-identity-refused = Identität abgelehnt
title-identity-unreadable = Identität nicht lesbar
title-form-refused = Formular abgelehnt
title-form-unreadable = Formular nicht lesbar
title-decision = Entscheidung
title-error = Fehler

## Startseite

home-members = Von mir verwaltete Mitglieder
home-ask = Website beantragen
home-approvals = Genehmigungen
home-approvals-link = Zu genehmigende Anträge
home-no-member = Ihr Konto ist bei keinem Mitglied als Administrator eingetragen. Bitten Sie den Support der Genossenschaft um Zugang.

## Die Seiten eines Mitglieds

member-nav = Seiten des Mitglieds
member-nav-sites = Meine Websites
member-nav-ask = Website beantragen

## Meine Websites

sites-none = Ihr Mitglied hat noch keine Website.
sites-caption = Websites des Mitglieds
sites-address = Adresse
sites-product = Produkt
sites-release = Version
sites-state = Status
sites-certificate = Zertifikat
sites-backup = Letzte Sicherung
site-online = Online
site-deleting = Wird gelöscht
site-preparing = In Vorbereitung
site-certificate-expires = läuft am { $date } ab
site-no-backup = keine
sites-requests = Meine Anträge
request-state-online = Website online
request-state-denied = abgelehnt
request-state-approved = genehmigt, Inbetriebnahme läuft
request-state-to-correct = zu korrigieren
request-state-pending = wartet auf Genehmigung

## Website beantragen

ask-all-used = Ihr Mitglied nutzt bereits alle Websites, die sein Vertrag vorsieht; wenden Sie sich an die Genossenschaft, um weitere hinzuzufügen.
ask-product = Produkt
ask-product-option = { $product } ({ $used } von { $total } genutzt)
ask-address = Adresse der Website
ask-address-hint = Eine Adresse unter den Domains Ihres Mitglieds ({ $domains }), zum Beispiel { $example }.
ask-alias = Weitere Adresse (optional)
ask-language = Sprache der Website
ask-comment = Wofür ist die Website gedacht? (optional)
ask-submit = Antrag senden
ask-no-product = Wählen Sie ein Produkt.
ask-invalid-address = „{ $address }“ ist keine gültige Adresse: Kleinbuchstaben, Ziffern, Bindestriche und Punkte, zum Beispiel www.gemeinde.be.
ask-no-address = Geben Sie die Adresse der Website an.
ask-rejected = Der Antrag wurde in dieser Form abgelehnt: { $message }
ask-name-taken = Soeben wurde ein Antrag mit demselben Namen gestellt; senden Sie das Formular bitte noch einmal.

## Mein Antrag

request-for = Antrag auf eine Website für { $hosts }.
step-checks = Prüfung:
checks-running = läuft …
checks-passed = bestanden
checks-failed = zu korrigieren
step-decision = Entscheidung:
decision-automatic = automatisch genehmigt
decision-approved-by = genehmigt von { $who }
decision-denied-by = abgelehnt von { $who }
decision-waiting = wartet auf eine Genehmigung
step-site = Inbetriebnahme:
site-ready = Ihre Website ist online: { $link }
site-awaiting-gitops = die Genossenschaft nimmt die Website in ihre Konfiguration auf
site-creating = die Website wird erstellt …
site-deleted = die Website wurde inzwischen gelöscht
request-in-progress = Diese Seite aktualisiert sich nicht von selbst.
request-refresh = Seite aktualisieren
request-reasons = Warum der Antrag nicht umgesetzt werden kann
request-new = Neuen Antrag stellen

## Warum ein Antrag nicht umgesetzt werden kann

reason-no-tenant = Dieser Antrag wurde nicht im Bereich eines Mitglieds gestellt.
reason-tenant-not-ready = Der Bereich Ihres Mitglieds ist noch nicht bereit; versuchen Sie es in einigen Minuten erneut oder wenden Sie sich an den Support.
reason-unknown-product = Das Produkt „{ $product }“ gibt es im Katalog nicht.
reason-not-entitled = Ihr Mitglied hat das Produkt „{ $product }“ nicht abonniert; wenden Sie sich an die Genossenschaft, um es in den Vertrag aufzunehmen.
reason-over-entitlement = Ihr Mitglied hat bereits alle Websites „{ $product }“, die sein Vertrag vorsieht; löschen Sie eine davon oder beantragen Sie eine Erweiterung.
reason-foreign-hostname = Die Adresse „{ $address }“ gehört nicht zu den Domains Ihres Mitglieds.
reason-foreign-hostname-domains = Die Adresse „{ $address }“ gehört nicht zu den Domains Ihres Mitglieds ({ $domains }); wählen Sie eine Adresse unter einer dieser Domains.
reason-hostname-taken = Die Adresse „{ $address }“ wird bereits von einer anderen Website verwendet; wählen Sie eine andere.
reason-site-name-taken = Bei Ihrem Mitglied gibt es bereits eine Website namens „{ $name }“; wählen Sie einen anderen Namen.
reason-invalid-site-name = Der Name „{ $name }“ ist nicht zulässig: Kleinbuchstaben, Ziffern und Bindestriche, höchstens 40 Zeichen.
reason-replicas-out-of-range = Die beantragte Anzahl Instanzen ({ $replicas }) ist für dieses Produkt nicht zulässig.
# $resource: was dem Kontingent fehlt (sites, CPU, memory oder storage, oder etwas anderes).
reason-quota-exceeded = Das Kontingent Ihres Mitglieds erlaubt keine weitere Website ({ $resource ->
        [sites] Anzahl der Websites
        [CPU] Prozessor
        [memory] Arbeitsspeicher
        [storage] Speicherplatz
       *[other] Ressourcen
    }); wenden Sie sich an die Genossenschaft.
reason-denied = Antrag abgelehnt von { $who }.
reason-denied-why = Antrag abgelehnt von { $who }: { $why }

## Zu genehmigende Anträge

approvals-approved = Antrag { $request } genehmigt.
approvals-denied = Antrag { $request } abgelehnt.
approvals-none = Kein Antrag wartet auf eine Entscheidung.
approvals-product = Produkt: { $product }
approvals-addresses = Adressen: { $hosts }
approvals-comment = Begründung: { $comment }
approvals-approve = { $request } genehmigen
approvals-failed-checks = Dieser Antrag besteht die Prüfungen nicht:
approvals-deny-reason = Grund der Ablehnung (das Mitglied wird ihn lesen)
approvals-deny = { $request } ablehnen

## Ablehnungen und Fehler

back-home = Zurück zur Startseite
back-approvals = Zurück zu den Anträgen
error-forbidden = Sie haben keinen Zugriff auf diese Seite. Wenn Sie das für einen Fehler halten, wenden Sie sich an den Support der Genossenschaft.
error-not-found = Diese Seite gibt es nicht oder nicht mehr.
error-unavailable = Der Dienst ist vorübergehend nicht verfügbar; versuchen Sie es gleich noch einmal.
error-internal = Das Portal konnte diese Seite nicht anzeigen. Versuchen Sie es noch einmal; wenn der Fehler bestehen bleibt, wenden Sie sich an den Support der Genossenschaft.
error-sign-in = Dieses Portal wird über die Anmeldung der Genossenschaft genutzt: Öffnen Sie es über die gewohnte Adresse.
error-reserved-name = Ihr Konto oder eine seiner Gruppen trägt den Namen „{ $name }“, den Kubernetes für sich reserviert: Das Portal akzeptiert ihn nie. Wenden Sie sich an den Support der Genossenschaft, um Ihr Konto korrigieren zu lassen.
error-repeated-header = Die Anmeldung der Genossenschaft hat den Header { $header } mehrfach übermittelt: Das Portal wählt keinen davon aus. Öffnen Sie das Portal über die gewohnte Adresse; wenn der Fehler bestehen bleibt, wenden Sie sich an den Support der Genossenschaft.
error-invalid-name = Die Anmeldung der Genossenschaft hat im Header { $header } den Namen { $name } übermittelt, der kein zulässiger Name ist (nur Buchstaben, Ziffern und . _ @ + - : /, durch Kommas getrennt). Wenden Sie sich an den Support der Genossenschaft, um Ihr Konto korrigieren zu lassen.
error-cross-site = Dieses Formular stammt nicht aus dem Portal; beginnen Sie noch einmal im Portal.
error-token-missing = Dieses Formular stammt nicht aus dem Portal: Es hat kein Sicherheitstoken. Öffnen Sie die Seite erneut im Portal und senden Sie das Formular noch einmal.
error-token-invalid = Dieses Formular wurde nicht für Sie erstellt, oder das Portal wurde inzwischen neu gestartet. Öffnen Sie die Seite erneut im Portal und senden Sie das Formular noch einmal.
error-token-expired = Dieses Formular ist abgelaufen: Es wurde vor mehr als { $hours } Stunden geöffnet. Öffnen Sie die Seite erneut und senden Sie das Formular noch einmal.
error-form-unreadable = Dieses Formular konnte nicht gelesen werden; öffnen Sie die Seite erneut und senden Sie es noch einmal.
error-approvers-only = Diese Seite ist den Genehmigungsberechtigten der Genossenschaft vorbehalten.
error-no-decision = Wählen Sie, ob Sie genehmigen oder ablehnen.
decision-forbidden = Sie sind nicht genehmigungsberechtigt: Nur die Genossenschaft entscheidet über Anträge, und ein Mitglied nie über seine eigenen.
decision-changed = Der Antrag wurde inzwischen geändert (vielleicht vom Mitglied); lesen Sie ihn erneut, bevor Sie entscheiden.
decision-not-valid = Dieser Antrag kann nicht genehmigt werden: Er besteht die Prüfungen nicht.
decision-no-reason = Geben Sie den Grund der Ablehnung an: Das Mitglied wird ihn lesen.
decision-already = Über diesen Antrag wurde bereits entschieden.
decision-gone = Diesen Antrag gibt es nicht mehr.
decision-failed = Die Entscheidung konnte nicht gespeichert werden ({ $why }).

## Die Wartungsseite (mutu maintenance-page), die die Öffentlichkeit sieht

maintenance-title = Website in Wartung
maintenance-this-site = Diese Website wird gerade von der Genossenschaft umgezogen oder aktualisiert. Sie ist in wenigen Minuten wieder erreichbar.
maintenance-named-site = Die Website { $site } wird gerade von der Genossenschaft umgezogen oder aktualisiert. Sie ist in wenigen Minuten wieder erreichbar.
maintenance-retry = Bitte versuchen Sie es etwas später noch einmal.
