# Le portail des membres et la page de maintenance, en français (la langue par défaut).
# Chaque message existe dans fr.ftl, de.ftl et en.ftl, avec les mêmes variables :
# le test `every_key_is_in_every_language_and_used` de src/i18n.rs le vérifie.

## Le cadre de chaque page

skip-link = Aller au contenu
nav-main = Navigation principale
nav-home = Accueil
signed-in-as = Connecté·e : { $user }
language-switch = Langue du portail

## Titres des pages

title-home = Accueil
title-sites = Mes sites
title-ask = Demander un site
title-request = Ma demande
title-approvals = Demandes à approuver
title-forbidden = Accès refusé
title-not-found = Introuvable
title-unavailable = Service indisponible
title-sign-in = Connexion requise
title-identity-refused = Identité refusée
title-identity-unreadable = Identité illisible
title-form-refused = Formulaire refusé
title-form-unreadable = Formulaire illisible
title-decision = Décision
title-error = Erreur

## Accueil

home-members = Mes membres
home-ask = demander un site
home-approvals = Approbations
home-approvals-link = Demandes à approuver
home-no-member = Votre compte n'est administrateur d'aucun membre. Demandez l'accès au support de la coopérative.

## Les pages d'un membre

member-nav = Pages du membre
member-nav-sites = Mes sites
member-nav-ask = Demander un site

## Mes sites

sites-none = Votre membre n'a pas encore de site.
sites-caption = Sites du membre
sites-address = Adresse
sites-product = Produit
sites-release = Version
sites-state = État
sites-certificate = Certificat
sites-backup = Dernière sauvegarde
site-online = En ligne
site-deleting = En suppression
site-preparing = En préparation
site-certificate-expires = expire le { $date }
site-no-backup = aucune
sites-requests = Mes demandes
request-state-online = site en ligne
request-state-denied = refusée
request-state-approved = approuvée, mise en service en cours
request-state-to-correct = à corriger
request-state-pending = en attente d'approbation

## Demander un site

ask-all-used = Votre membre utilise déjà tous les sites prévus par son contrat ; contactez la coopérative pour en ajouter.
ask-product = Produit
ask-product-option = { $product } ({ $used } sur { $total } utilisés)
ask-address = Adresse du site
ask-address-hint = Une adresse sous les domaines de votre membre ({ $domains }), par exemple { $example }.
ask-alias = Autre adresse (facultatif)
ask-language = Langue du site
ask-comment = Pourquoi ce site ? (facultatif)
ask-submit = Envoyer la demande
ask-no-product = Choisissez un produit.
ask-invalid-address = « { $address } » n'est pas une adresse valide : lettres minuscules, chiffres, tirets et points, par exemple www.commune.be.
ask-no-address = Indiquez l'adresse du site.
ask-rejected = La demande a été refusée telle quelle : { $message }
ask-name-taken = Une demande du même nom vient d'être faite ; envoyez le formulaire une nouvelle fois.

## Ma demande

request-for = Demande de site pour { $hosts }.
step-checks = Vérification :
checks-running = en cours…
checks-passed = conforme
checks-failed = à corriger
step-decision = Décision :
decision-automatic = approuvée automatiquement
decision-approved-by = approuvée par { $who }
decision-denied-by = refusée par { $who }
decision-waiting = en attente d'un approbateur
step-site = Mise en service :
site-ready = votre site est en ligne : { $link }
site-awaiting-gitops = la coopérative ajoute le site à sa configuration
site-creating = création du site en cours…
site-deleted = le site a été supprimé depuis
request-in-progress = Cette page ne se met pas à jour d'elle-même.
request-refresh = Actualiser la page
request-reasons = Pourquoi la demande ne peut pas aboutir
request-new = Faire une nouvelle demande

## Pourquoi une demande ne peut pas aboutir

reason-no-tenant = Cette demande n'a pas été faite dans l'espace d'un membre.
reason-tenant-not-ready = L'espace de votre membre n'est pas encore prêt ; réessayez dans quelques minutes ou contactez le support.
reason-unknown-product = Le produit « { $product } » n'existe pas au catalogue.
reason-not-entitled = Votre membre n'a pas souscrit au produit « { $product } » ; contactez la coopérative pour l'ajouter à son contrat.
reason-over-entitlement = Votre membre a déjà tous les sites « { $product } » prévus par son contrat ; supprimez-en un ou demandez une extension.
reason-foreign-hostname = L'adresse « { $address } » n'appartient pas aux domaines de votre membre.
reason-foreign-hostname-domains = L'adresse « { $address } » n'appartient pas aux domaines de votre membre ({ $domains }) ; choisissez une adresse sous l'un d'eux.
reason-hostname-taken = L'adresse « { $address } » est déjà utilisée par un autre site ; choisissez-en une autre.
reason-site-name-taken = Un site nommé « { $name } » existe déjà chez votre membre ; choisissez un autre nom.
reason-invalid-site-name = Le nom « { $name } » ne convient pas : lettres minuscules, chiffres et tirets, 40 caractères au plus.
reason-replicas-out-of-range = Le nombre d'instances demandé ({ $replicas }) n'est pas permis pour ce produit.
# $resource : ce qui manque au quota (sites, CPU, memory ou storage, ou autre chose).
reason-quota-exceeded = Le quota de votre membre ne permet pas un site de plus ({ $resource ->
        [sites] nombre de sites
        [CPU] processeur
        [memory] mémoire
        [storage] stockage
       *[other] ressources
    }) ; contactez la coopérative.
reason-denied = Demande refusée par { $who }.
reason-denied-why = Demande refusée par { $who } : { $why }

## Demandes à approuver

approvals-approved = Demande { $request } approuvée.
approvals-denied = Demande { $request } refusée.
approvals-none = Aucune demande n'attend de décision.
approvals-product = Produit : { $product }
approvals-addresses = Adresses : { $hosts }
approvals-comment = Motif : { $comment }
approvals-approve = Approuver { $request }
approvals-failed-checks = Cette demande ne passe pas les vérifications :
approvals-deny-reason = Raison du refus (le membre la lira)
approvals-deny = Refuser { $request }

## Refus et erreurs

back-home = Retour à l'accueil
back-approvals = Retour aux demandes
error-forbidden = Vous n'avez pas accès à cette page. Si vous pensez que c'est une erreur, contactez le support de la coopérative.
error-not-found = Cette page n'existe pas ou plus.
error-unavailable = Le service est momentanément indisponible ; réessayez dans un instant.
error-internal = Le portail n'a pas pu afficher cette page. Réessayez ; si cela persiste, contactez le support de la coopérative.
error-sign-in = Ce portail s'utilise au travers de la connexion de la coopérative : ouvrez-le depuis l'adresse habituelle.
error-reserved-name = Votre compte ou l'un de ses groupes porte le nom « { $name } », que Kubernetes se réserve : le portail ne l'accepte jamais. Contactez le support de la coopérative pour corriger votre compte.
error-repeated-header = La connexion de la coopérative a transmis l'en-tête { $header } plusieurs fois : le portail ne choisit pas entre eux. Ouvrez le portail depuis l'adresse habituelle ; si cela persiste, contactez le support de la coopérative.
error-invalid-name = La connexion de la coopérative a transmis dans l'en-tête { $header } le nom { $name }, qui n'est pas un nom accepté (lettres, chiffres et . _ @ + - : / seulement, séparés par des virgules). Contactez le support de la coopérative pour corriger votre compte.
error-cross-site = Ce formulaire ne vient pas du portail ; recommencez depuis le portail.
error-token-missing = Ce formulaire ne vient pas du portail : il n'a pas de jeton de sécurité. Rouvrez la page depuis le portail et envoyez le formulaire de nouveau.
error-token-invalid = Ce formulaire n'a pas été préparé pour vous, ou le portail a redémarré depuis. Rouvrez la page depuis le portail et envoyez le formulaire de nouveau.
error-token-expired = Ce formulaire a expiré : il a été ouvert il y a plus de { $hours } heures. Rouvrez la page et envoyez le formulaire de nouveau.
error-form-unreadable = Ce formulaire n'a pas pu être lu ; rouvrez la page et envoyez-le de nouveau.
error-approvers-only = Cette page est réservée aux approbateurs de la coopérative.
error-no-decision = Choisissez d'approuver ou de refuser.
decision-forbidden = Vous n'êtes pas approbateur : seule la coopérative décide des demandes, et jamais un membre des siennes.
decision-changed = La demande a changé entre-temps (le membre l'a peut-être modifiée) ; relisez-la avant de décider.
decision-not-valid = Cette demande ne peut pas être approuvée : elle ne passe pas les vérifications.
decision-no-reason = Indiquez la raison du refus : le membre la lira.
decision-already = Cette demande a déjà été décidée.
decision-gone = Cette demande n'existe plus.
decision-failed = La décision n'a pas pu être enregistrée ({ $why }).

## La page de maintenance (mutu maintenance-page), que voit le public

maintenance-title = Site en maintenance
maintenance-this-site = Ce site est en cours de déplacement ou de mise à jour par la coopérative. Il sera de retour dans quelques minutes.
maintenance-named-site = Le site { $site } est en cours de déplacement ou de mise à jour par la coopérative. Il sera de retour dans quelques minutes.
maintenance-retry = Merci de réessayer un peu plus tard.
